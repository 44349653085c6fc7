#include "engine/network/network_allocator.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>

#include <cerrno>
#include <algorithm>
#include <cstdio>
#include <set>
#include <utility>

#include <nlohmann/json.hpp>

#include "base/reverter.h"
#include "base/atomic_file.h"
#include "base/json_fields.h"

namespace fe::engine::network {
namespace {

using Json = nlohmann::ordered_json;
using hypervisor::NetworkIdentity;

constexpr int kFormatVersion = 1;
constexpr std::string_view kStateName = "network.json";
constexpr std::string_view kLockName = "network.lock";
constexpr std::string_view kJournalName = "network.journal";
constexpr size_t kCompactAfterRecords = 4096;
constexpr size_t kMaxTapName = 15;  // IFNAMSIZ - 1
constexpr size_t kMaxTapPrefix = kMaxTapName - 8;

bool IsTapPrefixChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
}

int HexDigit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// "02:FE" -> "02:fe" after checking it is two octets, locally administered and unicast.
Result<std::string> NormalizeMacPrefix(const std::string& prefix) {
  auto invalid = [&](std::string_view why) {
    return Status::InvalidArgument("network pool: mac_prefix '" + prefix + "': " + std::string(why));
  };
  if (prefix.size() != 5 || prefix[2] != ':') return invalid("expected two octets like 02:fe");
  int digits[4] = {HexDigit(prefix[0]), HexDigit(prefix[1]), HexDigit(prefix[3]), HexDigit(prefix[4])};
  for (int digit : digits) {
    if (digit < 0) return invalid("not hexadecimal");
  }
  int first = digits[0] * 16 + digits[1];
  if ((first & 0x02) == 0) return invalid("the first octet must have the locally administered bit (0x02) set");
  if ((first & 0x01) != 0) return invalid("the first octet must have the multicast bit (0x01) clear");
  std::string normalized = prefix;
  for (char& c : normalized) c = static_cast<char>(c >= 'A' && c <= 'F' ? c - 'A' + 'a' : c);
  return normalized;
}

std::string Hex8(uint32_t value) {
  char text[9];
  std::snprintf(text, sizeof(text), "%08x", value);
  return text;
}

Result<std::string> CreateDirectories(const std::string& dir) {
  if (dir.empty()) return Status::InvalidArgument("network state directory is empty");
  for (size_t slash = dir.find('/', 1);; slash = dir.find('/', slash + 1)) {
    std::string prefix = slash == std::string::npos ? dir : dir.substr(0, slash);
    if (!prefix.empty() && ::mkdir(prefix.c_str(), 0700) != 0 && errno != EEXIST) {
      return Status::FromErrno(errno, "create directory", prefix);
    }
    if (slash == std::string::npos) break;
  }
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0) return Status::FromErrno(errno, "stat", dir);
  if (!S_ISDIR(st.st_mode)) return Status::InvalidArgument("network state directory " + dir + " is not a directory");
  return dir;
}

// The holders of the leases left after applying the journal's `records` to the file's `leases`.
std::set<std::string> LiveLeaseHolders(const Json& leases, const std::vector<Json>& records) {
  std::set<std::string> live;
  for (const auto& [id, entry] : leases.items()) live.insert(id);
  for (const Json& record : records) {
    if (record.contains("release") && record["release"].is_string()) live.erase(record["release"].get<std::string>());
    if (record.contains("lease") && record["lease"].is_string()) live.insert(record["lease"].get<std::string>());
  }
  return live;
}

}  // namespace

std::string Ipv4Subnet::ToString() const { return FormatIpv4(network) + "/" + std::to_string(prefix_length); }

Result<uint32_t> ParseIpv4(const std::string& text) {
  in_addr address{};
  if (::inet_pton(AF_INET, text.c_str(), &address) != 1) {
    return Status::InvalidArgument("'" + text + "' is not an IPv4 address (dotted quad)");
  }
  return ntohl(address.s_addr);
}

std::string FormatIpv4(uint32_t address) {
  return std::to_string(address >> 24) + "." + std::to_string((address >> 16) & 0xff) + "." +
         std::to_string((address >> 8) & 0xff) + "." + std::to_string(address & 0xff);
}

Result<Ipv4Subnet> ParseSubnet(const std::string& cidr) {
  size_t slash = cidr.find('/');
  if (slash == std::string::npos)
    return Status::InvalidArgument("subnet '" + cidr + "': expected CIDR like 10.0.0.0/24");
  Result<uint32_t> network = ParseIpv4(cidr.substr(0, slash));
  if (!network.ok()) return network.status().Annotate("subnet '" + cidr + "'");
  const std::string length_text = cidr.substr(slash + 1);
  int length = -1;
  if (!length_text.empty() && length_text.size() <= 2 &&
      length_text.find_first_not_of("0123456789") == std::string::npos) {
    length = std::stoi(length_text);
  }
  if (length < 0 || length > 32) return Status::InvalidArgument("subnet '" + cidr + "': prefix length must be 0..32");
  Ipv4Subnet subnet{*network, length};
  if ((*network & subnet.HostMask()) != 0) {
    return Status::InvalidArgument("subnet '" + cidr + "': host bits are set (the network address is " +
                                   FormatIpv4(*network & ~subnet.HostMask()) + ")");
  }
  return subnet;
}

Result<std::unique_ptr<NetworkAllocator>> NetworkAllocator::Open(const std::string& state_dir,
                                                                 NetworkPoolConfig config) {
  Result<Ipv4Subnet> subnet = ParseSubnet(config.subnet);
  if (!subnet.ok()) return subnet.status().Annotate("network pool");
  if (subnet->prefix_length < 8 || subnet->prefix_length > 30) {
    return Status::InvalidArgument("network pool: subnet " + subnet->ToString() + ": prefix length must be 8..30");
  }
  if ((subnet->network >> 24) == 0) {
    return Status::InvalidArgument("network pool: subnet " + subnet->ToString() +
                                   " is in 0.0.0.0/8, which is not routable");
  }
  uint32_t gateway = subnet->network + 1;
  if (!config.gateway.empty()) {
    Result<uint32_t> parsed = ParseIpv4(config.gateway);
    if (!parsed.ok()) return parsed.status().Annotate("network pool: gateway");
    gateway = *parsed;
  }
  if (!subnet->Contains(gateway) || gateway == subnet->network || gateway == subnet->broadcast()) {
    return Status::InvalidArgument("network pool: gateway " + FormatIpv4(gateway) +
                                   " is not a host address of subnet " + subnet->ToString());
  }
  config.gateway = FormatIpv4(gateway);
  Result<std::string> mac_prefix = NormalizeMacPrefix(config.mac_prefix);
  if (!mac_prefix.ok()) return mac_prefix.status();
  config.mac_prefix = *mac_prefix;
  if (config.tap_prefix.size() > kMaxTapPrefix) {
    return Status::InvalidArgument("network pool: tap_prefix '" + config.tap_prefix + "' is longer than " +
                                   std::to_string(kMaxTapPrefix) + " bytes (TAP names have at most 15)");
  }
  for (char c : config.tap_prefix) {
    if (!IsTapPrefixChar(c)) {
      return Status::InvalidArgument("network pool: tap_prefix '" + config.tap_prefix +
                                     "' may hold only letters, digits, '_' and '-'");
    }
  }

  Result<std::string> dir = CreateDirectories(state_dir);
  if (!dir.ok()) return dir.status();
  const std::string lock_path = state_dir + "/" + std::string(kLockName);
  Result<FileLock> lock = FileLock::Acquire(lock_path, "network state " + state_dir);
  if (!lock.ok()) return lock.status();

  std::unique_ptr<NetworkAllocator> allocator(new NetworkAllocator(
      std::move(config), *subnet, gateway, state_dir + "/" + std::string(kStateName), std::move(*lock)));
  const std::string journal_path = state_dir + "/" + std::string(kJournalName);
  LeaseJournal::Contents contents;
  Result<LeaseJournal> journal = LeaseJournal::Open(journal_path, contents);
  if (!journal.ok()) return journal.status();
  Result<State> state = allocator->Load(contents, journal_path);
  if (!state.ok()) return state.status();
  allocator->state_ = std::move(state).value();
  allocator->journal_.emplace(std::move(journal).value());
  if (allocator->state_.unrecorded) {
    // The subnet the journal's leases are checked against at the next start must be on record.
    FE_RETURN_IF_ERROR(allocator->Compact());
  } else if (contents.generation != allocator->state_.journal_generation) {
    // Nothing may be appended to a journal a restart would ignore.
    FE_RETURN_IF_ERROR(allocator->journal_->Restart(allocator->state_.journal_generation));
  } else if (!contents.records.empty()) {
    // Folded in while nothing runs. Failing (a full filesystem) is no reason not to start: the
    // journal holds what network.json lacks, and compaction is tried again as it grows.
    (void)allocator->Compact();
  }
  return allocator;
}

Result<std::set<std::string>> LeaseHoldersOnDisk(const std::string& state_dir) {
  const std::string state_path = state_dir + "/" + std::string(kStateName);
  const std::string journal_path = state_dir + "/" + std::string(kJournalName);
  Json document = {{"leases", Json::object()}};
  if (Result<std::string> text = ReadSmallFile(state_path); text.ok()) {
    document = Json::parse(*text, nullptr, /*allow_exceptions=*/false);
    if (document.is_discarded() || !document.is_object() || !document.contains("leases") ||
        !document["leases"].is_object()) {
      return Status::InvalidArgument(state_path + ": no leases object");
    }
  } else if (text.status().sys_errno() != ENOENT) {
    return text.status();
  }
  LeaseJournal::Contents journal;
  if (Result<std::string> text = ReadSmallFile(journal_path); text.ok()) {
    size_t whole_bytes = 0;
    FE_ASSIGN_OR_RETURN(journal, LeaseJournal::Parse(*text, journal_path, whole_bytes));
  } else if (text.status().sys_errno() != ENOENT) {
    return text.status();
  }
  const bool replay = journal.generation == document.value("journal", uint64_t{0});
  return LiveLeaseHolders(document["leases"], replay ? journal.records : std::vector<Json>());
}

uint64_t NetworkAllocator::Capacity() const { return uint64_t{subnet_.HostMask()} + 1 - 3; }

NetworkIdentity NetworkAllocator::IdentityFor(uint32_t address) const {
  NetworkIdentity identity;
  identity.ipv4 = FormatIpv4(address);
  identity.prefix_length = subnet_.prefix_length;
  identity.gateway = FormatIpv4(gateway_);
  const std::string hex = Hex8(address);
  identity.mac = config_.mac_prefix + ":" + hex.substr(0, 2) + ":" + hex.substr(2, 2) + ":" + hex.substr(4, 2) + ":" +
                 hex.substr(6, 2);
  identity.tap_device = config_.tap_prefix + hex;
  identity.vsock_cid = address;
  return identity;
}

bool NetworkAllocator::State::Uses(const NetworkIdentity& identity) const {
  return cids.count(identity.vsock_cid) || ips.count(identity.ipv4) || macs.count(identity.mac) ||
         taps.count(identity.tap_device);
}

void NetworkAllocator::State::Index(const NetworkIdentity& identity) {
  ips.insert(identity.ipv4);
  macs.insert(identity.mac);
  taps.insert(identity.tap_device);
  cids.insert(identity.vsock_cid);
}

void NetworkAllocator::State::Unindex(const NetworkIdentity& identity) {
  ips.erase(identity.ipv4);
  macs.erase(identity.mac);
  taps.erase(identity.tap_device);
  cids.erase(identity.vsock_cid);
}

Result<NetworkAllocator::State> NetworkAllocator::Load(const LeaseJournal::Contents& journal,
                                                       const std::string& journal_path) const {
  State state;
  Result<std::string> text = ReadSmallFile(state_path_);
  if (!text.ok()) {
    if (text.status().sys_errno() != ENOENT) return text.status();
    state.unrecorded = true;
    // No file yet: no leases, and the fields in the order a new file has them.
    text =
        R"({"version":)" + std::to_string(kFormatVersion) + R"(,"subnet":"","gateway":"","next_host":1,"leases":{}})";
  }
  Json document = Json::parse(*text, nullptr, /*allow_exceptions=*/false);
  if (document.is_discarded() || !document.is_object())
    return Status::InvalidArgument(state_path_ + ": not a JSON object");

  const OrderedJsonFields read(document, state_path_);
  uint32_t version = 0;
  FE_RETURN_IF_ERROR(read.Number("version", version, OrderedJsonFields::kRequired, 0, UINT32_MAX));
  if (version != kFormatVersion) {
    return read.Fail("version", "unknown version " + std::to_string(version) + " (this engine reads " +
                                    std::to_string(kFormatVersion) + ")");
  }
  FE_RETURN_IF_ERROR(read.Number("next_host", state.next_host, OrderedJsonFields::kRequired, 0, UINT32_MAX));
  FE_ASSIGN_OR_RETURN(const Json* leases, read.Object("leases", OrderedJsonFields::kRequired));
  FE_RETURN_IF_ERROR(read.Number("journal", state.journal_generation, OrderedJsonFields::kOptional, 0, UINT64_MAX));
  if (journal.generation > state.journal_generation) {
    return Status::InvalidArgument(journal_path + ": generation " + std::to_string(journal.generation) +
                                   " is newer than the " + std::to_string(state.journal_generation) + " that " +
                                   state_path_ + " records");
  }
  // An older journal was folded into this file by a compaction a crash cut short.
  const bool replay = journal.generation == state.journal_generation;
  // Leases bind addresses of the subnet they were made in: refuse to mix them with another one.
  bool foreign = false;
  for (const char* key : {"subnet", "gateway"}) {
    std::string recorded;
    FE_RETURN_IF_ERROR(read.String(key, recorded, OrderedJsonFields::kOptional));
    const std::string configured = std::string(key) == "subnet" ? subnet_.ToString() : config_.gateway;
    if (recorded == configured) continue;
    const size_t live = LiveLeaseHolders(*leases, replay ? journal.records : std::vector<Json>()).size();
    if (live != 0) {
      return read.Fail(key, std::to_string(live) + " lease(s) were made with " + recorded + ", but " + configured +
                                " is configured; keep the old value until they are released");
    }
    foreign = true;  // no lease left: start afresh in the configured subnet
    state.unrecorded = true;
  }

  const Json no_leases = Json::object();
  for (const auto& [id, entry] : (foreign ? no_leases : *leases).items()) {
    const std::string field = "leases." + id;
    if (id.empty()) return read.Fail(field, "empty instance id");
    if (!entry.is_object()) return read.Fail(field, "expected an object");
    // The stored entry as it is: its four fields are authoritative, the others are kept.
    FE_RETURN_IF_ERROR(AddLoadedLease(state, id, read.Nested(entry, field), Json(id).dump() + ":" + entry.dump()));
  }
  if (replay && !foreign) FE_RETURN_IF_ERROR(Replay(state, journal, journal_path));
  // What every write records; a field the file lacks is added after the ones it has.
  document["version"] = kFormatVersion;
  document["subnet"] = subnet_.ToString();
  document["gateway"] = config_.gateway;
  document["next_host"] = nullptr;  // rendered from state.next_host
  document["leases"] = nullptr;     // rendered from state.leases
  document["journal"] = nullptr;    // rendered from state.journal_generation
  for (auto it = document.begin(); it != document.end(); ++it) state.top_level.emplace_back(it.key(), it->dump());
  return state;
}

Status NetworkAllocator::WriteState() const {
  size_t size = 16;
  for (const auto& [name, value] : state_.top_level) size += name.size() + value.size() + 8;
  for (const auto& [id, lease] : state_.leases) size += lease.member_json.size() + 6;
  std::string text;
  text.reserve(size);
  text += '{';
  for (size_t i = 0; i < state_.top_level.size(); ++i) {
    const auto& [name, value] = state_.top_level[i];
    text += i == 0 ? "\n  " : ",\n  ";
    text += Json(name).dump();
    text += ':';
    if (name == "next_host") {
      text += std::to_string(state_.next_host);
    } else if (name == "journal") {
      text += std::to_string(state_.journal_generation);
    } else if (name == "leases") {
      text += '{';
      bool first = true;
      for (const auto& [id, lease] : state_.leases) {
        text += first ? "\n    " : ",\n    ";
        first = false;
        text += lease.member_json;
      }
      text += first ? "}" : "\n  }";
    } else {
      text += value;
    }
  }
  text += "\n}\n";
  // Every instance's lease is in this file: durable on its own, whatever scope a fork opened.
  return ReplaceFileDurably(state_path_, text, 0600);
}

Status NetworkAllocator::AddLoadedLease(State& state, const std::string& id, const OrderedJsonFields& fields,
                                        std::string member_json) const {
  std::string ipv4, mac, tap;
  uint32_t cid = 0;
  FE_RETURN_IF_ERROR(fields.String("ipv4", ipv4, OrderedJsonFields::kRequired));
  FE_RETURN_IF_ERROR(fields.String("mac", mac, OrderedJsonFields::kRequired));
  FE_RETURN_IF_ERROR(fields.String("tap_device", tap, OrderedJsonFields::kRequired));
  FE_RETURN_IF_ERROR(fields.Number("vsock_cid", cid, OrderedJsonFields::kRequired, 0, UINT32_MAX));
  Result<uint32_t> address = ParseIpv4(ipv4);
  if (!address.ok() || !subnet_.Contains(*address) || *address == subnet_.network || *address == subnet_.broadcast() ||
      *address == gateway_) {
    return fields.Fail("ipv4", "'" + ipv4 + "' is not a leasable address of " + subnet_.ToString());
  }
  if (tap.empty() || tap.size() > kMaxTapName) {
    return fields.Fail("tap_device", "'" + tap + "' is not a TAP name of 1..15 bytes");
  }
  if (cid < 3 || cid == 0xffffffffu) return fields.Fail("vsock_cid", "CID must be 3..0xfffffffe");
  if (state.leases.count(id) != 0) return fields.Fail("ipv4", "instance " + id + " holds two leases");
  if (state.ips.count(ipv4)) return fields.Fail("ipv4", ipv4 + " is leased twice");
  if (state.macs.count(mac)) return fields.Fail("mac", mac + " is leased twice");
  if (state.taps.count(tap)) return fields.Fail("tap_device", tap + " is leased twice");
  if (state.cids.count(cid)) return fields.Fail("vsock_cid", std::to_string(cid) + " is leased twice");
  Lease lease;
  lease.identity.ipv4 = ipv4;
  lease.identity.mac = mac;
  lease.identity.tap_device = tap;
  lease.identity.vsock_cid = cid;
  lease.identity.prefix_length = subnet_.prefix_length;
  lease.identity.gateway = config_.gateway;
  lease.member_json = std::move(member_json);
  state.Index(lease.identity);
  state.leases.emplace(id, std::move(lease));
  return Status::Ok();
}

Status NetworkAllocator::Replay(State& state, const LeaseJournal::Contents& journal, const std::string& path) const {
  size_t line = 1;  // the header
  for (const Json& record : journal.records) {
    ++line;
    const OrderedJsonFields read(record, path + ": line " + std::to_string(line));
    std::string id;
    if (record.contains("release")) {
      FE_RETURN_IF_ERROR(read.String("release", id, OrderedJsonFields::kRequired));
      auto it = state.leases.find(id);
      if (it == state.leases.end()) continue;
      state.Unindex(it->second.identity);
      state.leases.erase(it);
      continue;
    }
    FE_RETURN_IF_ERROR(read.String("lease", id, OrderedJsonFields::kRequired));
    if (id.empty()) return read.Fail("lease", "empty instance id");
    FE_RETURN_IF_ERROR(read.Number("next_host", state.next_host, OrderedJsonFields::kRequired, 0, UINT32_MAX));
    const Json entry = {{"ipv4", record.value("ipv4", Json())},
                        {"mac", record.value("mac", Json())},
                        {"tap_device", record.value("tap_device", Json())},
                        {"vsock_cid", record.value("vsock_cid", Json())}};
    FE_RETURN_IF_ERROR(AddLoadedLease(state, id, read, Json(id).dump() + ":" + entry.dump()));
  }
  return Status::Ok();
}

Status NetworkAllocator::Compact() {
  const uint64_t previous = state_.journal_generation;
  state_.journal_generation = previous + 1;
  // network.json first: once it names the new generation, the old journal is ignored, and its
  // records are in the file.
  if (Status written = WriteState(); !written.ok()) {
    state_.journal_generation = previous;
    return written.Annotate("compacting the network lease journal");
  }
  // From here the old journal's lines would be ignored at a restart: no line may be added to it.
  if (Status restarted = journal_->Restart(state_.journal_generation); !restarted.ok()) {
    journal_needs_restart_ = true;
    return restarted.Annotate("compacting the network lease journal");
  }
  journal_needs_restart_ = false;
  return Status::Ok();
}

Status NetworkAllocator::Journal(const Json& record) {
  if (journal_needs_restart_) {
    FE_RETURN_IF_ERROR(journal_->Restart(state_.journal_generation).Annotate("restarting the network lease journal"));
    journal_needs_restart_ = false;
  }
  FE_RETURN_IF_ERROR(journal_->Append(record));
  // Rewriting the whole file costs O(leases): only when the journal has grown past that.
  if (journal_->records() > std::max<size_t>(kCompactAfterRecords, 2 * state_.leases.size())) {
    // The record is durable (or in the caller's scope) already: a failed compaction is retried at
    // the next change and at the next start.
    (void)Compact();
  }
  return Status::Ok();
}

Result<NetworkIdentity> NetworkAllocator::Allocate(const std::string& instance_id) {
  if (instance_id.empty()) return Status::InvalidArgument("network lease: empty instance id");
  std::lock_guard lock(mutex_);
  if (auto it = state_.leases.find(instance_id); it != state_.leases.end()) {
    return Status::AlreadyExists("instance " + instance_id + " already leases " + it->second.identity.ipv4 + " in " +
                                 subnet_.ToString());
  }
  const uint32_t last_host = subnet_.HostMask() - 1;  // the broadcast address is HostMask()
  uint32_t host = state_.next_host >= 1 && state_.next_host <= last_host ? state_.next_host : 1;
  for (uint32_t tried = 0; tried < last_host; ++tried, host = host == last_host ? 1 : host + 1) {
    const uint32_t address = subnet_.network + host;
    if (address == gateway_) continue;
    // An address's CID is the address: skipping a leased one needs no formatting.
    if (state_.cids.count(address)) continue;
    NetworkIdentity identity = IdentityFor(address);
    if (state_.Uses(identity)) continue;

    const Json entry = {{"ipv4", identity.ipv4},
                        {"mac", identity.mac},
                        {"tap_device", identity.tap_device},
                        {"vsock_cid", identity.vsock_cid}};
    // Changed in place and undone unless written: none of the identity's resources was indexed before.
    Reverter reverter;
    reverter.Add("forget the unwritten lease of " + instance_id,
                 [this, &instance_id, &identity, cursor = state_.next_host] {
                   state_.leases.erase(instance_id);
                   state_.Unindex(identity);
                   state_.next_host = cursor;
                   return Status::Ok();
                 });
    state_.leases.emplace(instance_id, Lease{identity, Json(instance_id).dump() + ":" + entry.dump()});
    state_.Index(identity);
    state_.next_host = host == last_host ? 1 : host + 1;
    FE_RETURN_IF_ERROR(Journal({{"lease", instance_id},
                                {"ipv4", identity.ipv4},
                                {"mac", identity.mac},
                                {"tap_device", identity.tap_device},
                                {"vsock_cid", identity.vsock_cid},
                                {"next_host", state_.next_host}})
                           .Annotate("leasing " + identity.ipv4 + " to " + instance_id));
    reverter.Commit();
    return identity;
  }
  return Status::InsufficientResources("no free IPv4 address in subnet " + subnet_.ToString() + ": all " +
                                       std::to_string(Capacity()) + " usable addresses are leased (gateway " +
                                       config_.gateway + " excluded)");
}

Status NetworkAllocator::Release(const std::string& instance_id) {
  std::lock_guard lock(mutex_);
  auto it = state_.leases.find(instance_id);
  if (it == state_.leases.end()) return Status::Ok();
  // Out of the map while the file is written; put back (no allocation) unless written.
  decltype(state_.leases)::node_type released;
  Reverter reverter;
  reverter.Add("keep the lease of " + instance_id, [this, &released] {
    if (released) state_.leases.insert(std::move(released));
    return Status::Ok();
  });
  released = state_.leases.extract(it);
  FE_RETURN_IF_ERROR(Journal({{"release", instance_id}}).Annotate("releasing the lease of " + instance_id));
  reverter.Commit();
  state_.Unindex(released.mapped().identity);
  return Status::Ok();
}

std::optional<NetworkIdentity> NetworkAllocator::Find(const std::string& instance_id) const {
  std::lock_guard lock(mutex_);
  auto it = state_.leases.find(instance_id);
  if (it == state_.leases.end()) return std::nullopt;
  return it->second.identity;
}

std::map<std::string, NetworkIdentity> NetworkAllocator::Leases() const {
  std::lock_guard lock(mutex_);
  std::map<std::string, NetworkIdentity> leases;
  for (const auto& [id, lease] : state_.leases) leases.emplace_hint(leases.end(), id, lease.identity);
  return leases;
}

}  // namespace fe::engine::network
