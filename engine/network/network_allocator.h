// The engine's network identities: each live instance leases an IPv4 address, a MAC, a TAP device
// name and a vsock CID, and no two live instances ever share any of them, across daemon restarts.
//
// Policy. The allocator hands out guest addresses of one configured subnet, next-fit (a cursor that
// moves on, so a just-released address is the last to come back: ARP caches and conntrack entries
// of the old owner have time to expire). The network address, the broadcast address and the gateway
// are never handed out. The other three resources are derived from the address, which makes them
// unique wherever the address is, and stable when an address is reused:
//   MAC        "<mac_prefix>:<the four address bytes in hex>", e.g. 02:fe:0a:64:00:05 for 10.100.0.5
//              (locally administered, unicast: the prefix's first octet has bit 1 set, bit 0 clear);
//   TAP name   "<tap_prefix><the address as 8 hex digits>", e.g. "fe0a640005" (at most 15 bytes);
//   vsock CID  the address as a 32-bit number (10.100.0.5 -> 174325765): never 0-2 or 0xffffffff.
// Two daemons on one host with different subnets therefore never collide either. A lease stores all
// four values and the stored values are authoritative (a later change of prefix does not touch
// existing leases); each new lease is also checked against every live lease.
//
// Persistence: <state_dir>/network.json, JSON, replaced atomically (temporary file, fsync, rename,
// directory fsync), plus <state_dir>/network.journal (engine/network/lease_journal.h): each lease and
// release is one appended line, durable before the change is visible in memory (or, inside a
// DeferredSync scope, by the scope's sync, before the instance that holds the lease is committed).
// network.json is rewritten from memory, and the journal restarted, at a start that finds records in
// the journal (a failure there, e.g. a full disk, is retried later) and whenever the journal holds
// more than max(4096, 2 x leases) records. Fields this version does not know are kept, at the top level
// and in each lease. A file that cannot be parsed is an error naming the file and the field, never silently reset (that
// would hand out addresses still in use). Open() takes an exclusive flock on <state_dir>/network.lock for the
// allocator's lifetime, so two daemons can never share one state directory.
//   {"version": 1, "subnet": "10.100.0.0/16", "gateway": "10.100.0.1", "next_host": 7,
//    "leases": {"<instance id>": {"ipv4": ..., "mac": ..., "tap_device": ..., "vsock_cid": ...}, ...},
//    "journal": <the generation of the journal that applies on top of it>}
// is written with one top-level field and one lease a line (compact within the line): grep finds a
// lease, a diff shows the leases that changed, and the file is a fifth smaller than indented JSON.
//
// Cost. Allocate and Release do O(log n) work and append one line; the whole file (O(n) bytes, each
// lease's text kept in memory) is rewritten once per max(4096, 2n) changes.
//
// Threads: every method may be called concurrently; one mutex (mutex_) guards the state and the file.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <unordered_set>
#include <utility>
#include <vector>

#include "base/file_lock.h"
#include "base/json_fields.h"
#include "base/status.h"
#include "base/unique_fd.h"
#include "engine/network/lease_journal.h"
#include "hypervisor/plugin.h"

namespace fe::engine::network {

struct NetworkPoolConfig {
  std::string subnet;                // CIDR with host bits zero, prefix length 8..30, not 0.0.0.0/x: "10.100.0.0/16"
  std::string gateway;               // dotted quad inside the subnet; empty: the first host address
  std::string mac_prefix = "02:fe";  // two octets; the first locally administered and unicast
  std::string tap_prefix = "fe";     // at most 7 bytes of [A-Za-z0-9_-]
};

// A subnet parsed from CIDR: addresses as host-order 32-bit numbers.
struct Ipv4Subnet {
  uint32_t network = 0;
  int prefix_length = 0;
  uint32_t broadcast() const { return network | HostMask(); }
  uint32_t HostMask() const { return prefix_length >= 32 ? 0u : (0xffffffffu >> prefix_length); }
  bool Contains(uint32_t address) const { return (address & ~HostMask()) == network; }
  std::string ToString() const;
};

// "10.0.0.0/24" -> subnet. InvalidArgument naming the text when malformed or host bits are set.
Result<Ipv4Subnet> ParseSubnet(const std::string& cidr);
// Dotted quad -> host-order number, or InvalidArgument.
Result<uint32_t> ParseIpv4(const std::string& text);
std::string FormatIpv4(uint32_t address);

// The instance ids holding a lease in `state_dir` as a restart would find them (network.json and its
// journal), read without the allocator's lock and without changing anything: for inspection while a
// daemon runs or after it died.
Result<std::set<std::string>> LeaseHoldersOnDisk(const std::string& state_dir);

class NetworkAllocator {
 public:
  // Validates `config`, creates `state_dir` if needed, locks it and loads network.json (missing: no
  // leases). Busy when another process holds the lock; InvalidArgument when the config is invalid,
  // the file is malformed, or the file has leases and was written for another subnet or gateway.
  static Result<std::unique_ptr<NetworkAllocator>> Open(const std::string& state_dir, NetworkPoolConfig config);

  // Leases a new identity to `instance_id` (non-empty) and persists it before returning.
  // AlreadyExists when the instance holds a lease; NoSpace, naming the subnet, when every address
  // is leased; an I/O error when the state cannot be written (then nothing was leased).
  Result<hypervisor::NetworkIdentity> Allocate(const std::string& instance_id);

  // Ends the lease of `instance_id` and persists that. Ok when it holds none (release is idempotent,
  // so a retried teardown does not fail). Its resources may be leased again afterwards.
  Status Release(const std::string& instance_id);

  std::optional<hypervisor::NetworkIdentity> Find(const std::string& instance_id) const;
  std::map<std::string, hypervisor::NetworkIdentity> Leases() const;

  const Ipv4Subnet& subnet() const { return subnet_; }
  // Usable guest addresses: the subnet's size minus network, broadcast and gateway.
  uint64_t Capacity() const;
  const std::string& state_path() const { return state_path_; }

 private:
  struct Lease {
    hypervisor::NetworkIdentity identity;
    std::string member_json;  // its line of the file, `"<id>":{...}`, with the fields this version does not know
  };
  struct State {
    uint32_t next_host = 1;  // host part where the next search starts
    std::map<std::string, Lease> leases;
    // The resources of every lease: a new lease must be in none of them.
    std::unordered_set<std::string> ips, macs, taps;
    std::unordered_set<uint32_t> cids;
    // The file's top-level fields in order, name -> value as compact JSON text, so unknown fields
    // survive; the values of "next_host" and "leases" are rendered from the fields above.
    std::vector<std::pair<std::string, std::string>> top_level;

    uint64_t journal_generation = 0;
    bool unrecorded = false;  // network.json is missing or records another (lease-free) subnet

    bool Uses(const hypervisor::NetworkIdentity& identity) const;
    void Index(const hypervisor::NetworkIdentity& identity);
    void Unindex(const hypervisor::NetworkIdentity& identity);
  };

  NetworkAllocator(NetworkPoolConfig config, Ipv4Subnet subnet, uint32_t gateway, std::string state_path, FileLock lock)
      : config_(std::move(config)),
        subnet_(subnet),
        gateway_(gateway),
        state_path_(std::move(state_path)),
        lock_(std::move(lock)) {}

  // network.json, and the journal's records on top of it when it is the generation the file names.
  Result<State> Load(const LeaseJournal::Contents& journal, const std::string& journal_path) const;
  hypervisor::NetworkIdentity IdentityFor(uint32_t address) const;
  // Writes state_ to the file durably. Callers change state_ first and undo the change when this
  // fails, all under mutex_, so no other thread sees a change the file does not hold.
  // REQUIRES: mutex_ held.
  Status WriteState() const;
  // Validates the lease `id` (ipv4, mac, tap_device, vsock_cid read through `fields`, errors naming
  // them) against the subnet and every lease of `state`, and adds it with `member_json` as its text.
  Status AddLoadedLease(State& state, const std::string& id, const OrderedJsonFields& fields,
                        std::string member_json) const;
  // Applies the journal's records to `state` (a state loaded from network.json of its generation).
  Status Replay(State& state, const LeaseJournal::Contents& journal, const std::string& path) const;
  // Appends `record` to the journal, compacting when it has grown. REQUIRES: mutex_ held.
  Status Journal(const nlohmann::ordered_json& record);
  // Writes network.json of the next generation and restarts the journal. REQUIRES: mutex_ held.
  Status Compact();

  const NetworkPoolConfig config_;
  const Ipv4Subnet subnet_;
  const uint32_t gateway_;
  const std::string state_path_;
  const FileLock lock_;  // held for the allocator's lifetime

  mutable std::mutex mutex_;
  State state_;                          // GUARDED_BY(mutex_)
  std::optional<LeaseJournal> journal_;  // GUARDED_BY(mutex_); set by Open
  bool journal_needs_restart_ = false;   // GUARDED_BY(mutex_): network.json is a generation ahead of it
};

}  // namespace fe::engine::network
