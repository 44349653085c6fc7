#include "hypervisor/identity_handoff.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <optional>
#include <thread>

#include <nlohmann/json.hpp>

namespace fe::hypervisor {
namespace {

using Json = nlohmann::ordered_json;
using Clock = std::chrono::steady_clock;

// Puts `fd` in non-blocking mode for the guard's lifetime, restoring its flags afterwards.
class NonBlocking {
 public:
  explicit NonBlocking(int fd) : fd_(fd), flags_(::fcntl(fd, F_GETFL)) {
    if (flags_ >= 0 && (flags_ & O_NONBLOCK) == 0) ::fcntl(fd_, F_SETFL, flags_ | O_NONBLOCK);
  }
  ~NonBlocking() {
    if (flags_ >= 0 && (flags_ & O_NONBLOCK) == 0) ::fcntl(fd_, F_SETFL, flags_);
  }
  bool ok() const { return flags_ >= 0; }

 private:
  int fd_;
  int flags_;
};

int RemainingMs(Clock::time_point deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return left <= 0 ? 0 : static_cast<int>(std::min<int64_t>(left, 1 << 30));
}

// Waits until `fd` is ready for `events`. False on timeout (errno ETIMEDOUT) or a poll error.
bool WaitFor(int fd, short events, Clock::time_point deadline) {
  while (true) {
    pollfd entry{fd, events, 0};
    int ready = ::poll(&entry, 1, RemainingMs(deadline));
    if (ready > 0) return true;
    if (ready == 0) {
      errno = ETIMEDOUT;
      return false;
    }
    if (errno != EINTR) return false;
  }
}

Status WriteAll(int fd, std::string_view data, Clock::time_point deadline, std::string_view peer) {
  bool is_socket = true;
  while (!data.empty()) {
    ssize_t wrote =
        is_socket ? ::send(fd, data.data(), data.size(), MSG_NOSIGNAL) : ::write(fd, data.data(), data.size());
    if (wrote < 0 && errno == ENOTSOCK && is_socket) {
      is_socket = false;
      continue;
    }
    if (wrote >= 0) {
      data.remove_prefix(static_cast<size_t>(wrote));
      continue;
    }
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) return Status::FromErrno(errno, "send to", peer);
    if (!WaitFor(fd, POLLOUT, deadline)) return Status::FromErrno(errno, "send to", peer);
  }
  return Status::Ok();
}

// Reads one '\n'-terminated line (without the '\n'). With `exact`, reads byte by byte so nothing past
// the line is consumed; otherwise whatever follows the line is dropped.
Result<std::string> ReadLine(int fd, Clock::time_point deadline, size_t limit, bool exact, std::string_view peer,
                             std::string_view waiting_for) {
  std::string line;
  char buffer[4096];
  while (true) {
    ssize_t got = ::read(fd, buffer, exact ? 1 : sizeof(buffer));
    if (got > 0) {
      std::string_view chunk(buffer, static_cast<size_t>(got));
      size_t newline = chunk.find('\n');
      line.append(chunk.substr(0, newline));
      if (newline != std::string_view::npos) return line;
      if (line.size() > limit) {
        return Status::Io(std::string(peer) + ": protocol error: a line longer than " + std::to_string(limit) +
                          " bytes");
      }
      continue;
    }
    if (got == 0) {
      return Status::Io(std::string(peer) + " closed the connection before " + std::string(waiting_for) +
                        (line.empty() ? "" : " (after a partial line)"));
    }
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) return Status::FromErrno(errno, "read from", peer);
    if (!WaitFor(fd, POLLIN, deadline)) {
      if (errno == ETIMEDOUT) {
        return Status::FromErrno(ETIMEDOUT, "waiting for " + std::string(waiting_for) + " from", peer);
      }
      return Status::FromErrno(errno, "poll", peer);
    }
  }
}

// A printable excerpt of what a peer sent, for error messages.
std::string Excerpt(std::string_view text) {
  std::string out;
  for (char c : text.substr(0, 120)) out += (c >= 0x20 && c < 0x7f) ? c : '?';
  if (text.size() > 120) out += "...";
  return "'" + out + "'";
}

int64_t RealtimeNs() {
  timespec now{};
  ::clock_gettime(CLOCK_REALTIME, &now);
  return int64_t{now.tv_sec} * 1000000000 + now.tv_nsec;
}

// What a request asked, for checking its answer.
struct Asked {
  std::string what;                    // completes "<peer> could not ..." in errors
  std::optional<uint64_t> generation;  // what a set_identity ack must carry; nullopt for other acks (none)
  ErrorCode refused = ErrorCode::kIo;  // the code of the guest's own error answer (other than unsupported)
};

// Returns the ack.
Result<Json> CheckAnswer(const std::string& line, std::string_view nonce, const Asked& asked, std::string_view peer) {
  const std::optional<uint64_t>& generation = asked.generation;
  const std::string who(peer);
  Json answer = Json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (answer.is_discarded() || !answer.is_object()) {
    return Status::Io(who + ": protocol error: the answer is not a JSON object: " + Excerpt(line));
  }
  auto text = [&](const char* key) {
    auto it = answer.find(key);
    return it != answer.end() && it->is_string() ? it->get<std::string>() : std::string();
  };
  const std::string type = text("type");
  if (type != "ack" && type != "error") {
    return Status::Io(who + ": protocol error: unexpected answer type '" + type + "': " + Excerpt(line));
  }
  if (auto version = answer.find("version");
      version != answer.end() && !(version->is_number_integer() && *version == kIdentityProtocolVersion)) {
    return Status::Io(who + ": protocol error: answered in version " + version->dump() + ", asked in " +
                      std::to_string(kIdentityProtocolVersion));
  }
  const std::string answered_nonce = text("nonce");
  if (answered_nonce != nonce) {
    return Status::Io(who + ": protocol error: answered nonce '" + answered_nonce + "' instead of '" +
                      std::string(nonce) + "' (a stale or foreign reply)");
  }
  if (type == "error") {
    const std::string code = text("code");
    const std::string message = text("message");
    // An agent that predates set_time, freeze or thaw rejects it as an invalid request.
    const bool unsupported = code == "unsupported_version" || (!generation && code == "invalid_request");
    return Status(unsupported ? ErrorCode::kUnsupported : asked.refused, who + " could not " + asked.what + ": " +
                                                                             (code.empty() ? "error" : code) +
                                                                             (message.empty() ? "" : ": " + message));
  }
  if (!generation) return answer;
  auto answered_generation = answer.find("generation");
  if (answered_generation == answer.end() || !answered_generation->is_number_unsigned() ||
      answered_generation->get<uint64_t>() != *generation) {
    return Status::Io(who + ": protocol error: acknowledged generation " +
                      (answered_generation == answer.end() ? "(none)" : answered_generation->dump()) + " instead of " +
                      std::to_string(*generation));
  }
  return answer;
}

// Sends `request` (a line with its '\n', carrying `nonce`) and returns the guest's ack, within `timeout`.
Result<Json> Exchange(int fd, const std::string& request, std::string_view nonce, const Asked& asked,
                      std::chrono::milliseconds timeout, const std::string& who) {
  const Clock::time_point deadline = Clock::now() + timeout;
  NonBlocking mode(fd);
  if (!mode.ok()) return Status::FromErrno(errno, "fcntl", who);
  FE_RETURN_IF_ERROR(WriteAll(fd, request, deadline, who));
  Result<std::string> line = ReadLine(fd, deadline, kMaxLineBytes, /*exact=*/false, who,
                                      "the acknowledgement (" + std::to_string(timeout.count()) + " ms)");
  if (!line.ok()) return line.status();
  return CheckAnswer(*line, nonce, asked, who);
}

// The ack's `key` as a list of strings.
Result<std::vector<std::string>> StringList(const Json& ack, const char* key, const std::string& who) {
  auto list = ack.find(key);
  if (list == ack.end() || !list->is_array()) {
    return Status::Io(who + ": protocol error: the acknowledgement has no \"" + key + "\" list");
  }
  std::vector<std::string> items;
  for (const Json& item : *list) {
    if (!item.is_string()) return Status::Io(who + ": protocol error: \"" + key + "\" holds a non-string");
    items.push_back(item.get<std::string>());
  }
  return items;
}

}  // namespace

std::string NewNonce() {
  unsigned char bytes[16];
  size_t filled = 0;
  while (filled < sizeof(bytes)) {
    ssize_t got = ::getrandom(bytes + filled, sizeof(bytes) - filled, 0);
    if (got > 0) filled += static_cast<size_t>(got);
  }
  static constexpr char kHex[] = "0123456789abcdef";
  std::string nonce;
  for (unsigned char byte : bytes) {
    nonce += kHex[byte >> 4];
    nonce += kHex[byte & 0xf];
  }
  return nonce;
}

std::string EncodeIdentityRequest(const IdentityHandoff& handoff, std::string_view nonce, int64_t host_realtime_ns) {
  Json request = {{"type", "set_identity"},
                  {"version", kIdentityProtocolVersion},
                  {"nonce", std::string(nonce)},
                  {"generation", handoff.generation},
                  {"identity",
                   {{"mac", handoff.identity.mac},
                    {"ipv4", handoff.identity.ipv4},
                    {"prefix_length", handoff.identity.prefix_length},
                    {"gateway", handoff.identity.gateway}}},
                  {"previous_mac", handoff.previous_mac},
                  {"host_time", {{"realtime_ns", host_realtime_ns}}}};
  return request.dump() + "\n";
}

Status HandOffIdentity(int fd, const IdentityHandoff& handoff, std::chrono::milliseconds timeout,
                       std::string_view peer) {
  const std::string nonce = NewNonce();
  const Asked asked{"apply the identity (generation " + std::to_string(handoff.generation) + ")", handoff.generation};
  return Exchange(fd, EncodeIdentityRequest(handoff, nonce, RealtimeNs()), nonce, asked, timeout,
                  "identity handoff to " + std::string(peer))
      .status();
}

std::string EncodeTimeRequest(std::string_view nonce, int64_t host_realtime_ns) {
  Json request = {{"type", "set_time"},
                  {"version", kIdentityProtocolVersion},
                  {"nonce", std::string(nonce)},
                  {"host_time", {{"realtime_ns", host_realtime_ns}}}};
  return request.dump() + "\n";
}

Status SetGuestClock(int fd, std::chrono::milliseconds timeout, std::string_view peer) {
  const std::string nonce = NewNonce();
  return Exchange(fd, EncodeTimeRequest(nonce, RealtimeNs()), nonce, Asked{"set its clock", std::nullopt}, timeout,
                  "clock of " + std::string(peer))
      .status();
}

Result<std::vector<std::string>> FreezeGuestFilesystems(int fd, std::chrono::milliseconds thaw_after,
                                                        std::chrono::milliseconds timeout, std::string_view peer) {
  const std::string who = "filesystem freeze of " + std::string(peer);
  const std::string nonce = NewNonce();
  Json request = {{"type", "freeze"},
                  {"version", kIdentityProtocolVersion},
                  {"nonce", nonce},
                  {"thaw_after_ms", thaw_after.count()}};
  // A guest that answers it cannot be frozen refuses for a reason of its own (a swap disk, a filesystem
  // without freeze): FailedPrecondition, which the caller can tell from a broken channel.
  const Asked asked{"freeze its filesystems", std::nullopt, ErrorCode::kFailedPrecondition};
  FE_ASSIGN_OR_RETURN(Json ack, Exchange(fd, request.dump() + "\n", nonce, asked, timeout, who));
  return StringList(ack, "frozen", who);
}

Result<GuestThaw> ThawGuestFilesystems(int fd, std::chrono::milliseconds timeout, std::string_view peer) {
  const std::string who = "filesystem thaw of " + std::string(peer);
  const std::string nonce = NewNonce();
  Json request = {{"type", "thaw"}, {"version", kIdentityProtocolVersion}, {"nonce", nonce}};
  FE_ASSIGN_OR_RETURN(
      Json ack, Exchange(fd, request.dump() + "\n", nonce, Asked{"thaw its filesystems", std::nullopt}, timeout, who));
  GuestThaw thaw;
  FE_ASSIGN_OR_RETURN(thaw.thawed, StringList(ack, "thawed", who));
  auto held = ack.find("held");
  if (held == ack.end() || !held->is_boolean()) {
    return Status::Io(who + ": protocol error: the acknowledgement has no boolean \"held\"");
  }
  thaw.held = held->get<bool>();
  return thaw;
}

Result<UniqueFd> ConnectHybridVsock(const std::string& uds_path, uint32_t port, std::chrono::milliseconds timeout) {
  const Clock::time_point deadline = Clock::now() + timeout;
  const std::string who = "vsock port " + std::to_string(port) + " via " + uds_path;
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  if (uds_path.empty() || uds_path.size() >= sizeof(address.sun_path)) {
    return Status::InvalidArgument("vsock socket path '" + uds_path + "' does not fit a Unix socket address");
  }
  std::memcpy(address.sun_path, uds_path.c_str(), uds_path.size() + 1);
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd) return Status::FromErrno(errno, "socket", "for " + who);
  while (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&address), sizeof(address)) != 0) {
    if (errno == EINTR) continue;
    if (errno != EAGAIN) return Status::FromErrno(errno, "connect to", uds_path);
    // The listener's backlog is full: try again until the deadline.
    if (Clock::now() >= deadline) return Status::FromErrno(ETIMEDOUT, "connect to", uds_path);
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  FE_RETURN_IF_ERROR(WriteAll(fd.get(), "CONNECT " + std::to_string(port) + "\n", deadline, who));
  Result<std::string> line = ReadLine(fd.get(), deadline, 64, /*exact=*/true, who,
                                      "the answer to CONNECT (is a guest listening on the port?)");
  if (!line.ok()) return line.status();
  bool ok = line->size() > 3 && line->compare(0, 3, "OK ") == 0 &&
            line->find_first_not_of("0123456789", 3) == std::string::npos;
  if (!ok) return Status::Io(who + ": CONNECT " + std::to_string(port) + " answered " + Excerpt(*line));
  int flags = ::fcntl(fd.get(), F_GETFL);
  if (flags < 0 || ::fcntl(fd.get(), F_SETFL, flags & ~O_NONBLOCK) != 0) return Status::FromErrno(errno, "fcntl", who);
  return fd;
}

}  // namespace fe::hypervisor
