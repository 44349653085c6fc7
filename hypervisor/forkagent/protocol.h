// The guest's half of the identity handoff protocol ("forkengine identity handoff", version 1; the
// wire format and its rules are documented in hypervisor/identity_handoff.h): parsing and validating
// the host's set_identity request, and encoding the ack and error replies. Pure: no I/O.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"

namespace fe::hypervisor::forkagent {

// The error codes a reply may carry.
inline constexpr std::string_view kInvalidRequest = "invalid_request";
inline constexpr std::string_view kUnsupportedVersion = "unsupported_version";
inline constexpr std::string_view kStaleGeneration = "stale_generation";
inline constexpr std::string_view kApplyFailed = "apply_failed";

using MacAddress = std::array<uint8_t, 6>;

struct GuestIdentity {
  MacAddress mac{};
  uint32_t ipv4 = 0;      // network byte order
  int prefix_length = 0;  // 1..32
  uint32_t gateway = 0;   // network byte order; 0: no default route
};

struct IdentityRequest {
  std::string nonce;  // 32 lower-case hex digits
  uint64_t generation = 0;
  GuestIdentity identity;
  bool has_previous_mac = false;  // false: change the guest's only non-loopback NIC
  MacAddress previous_mac{};
  int64_t host_realtime_ns = 0;  // > 0
};

// A set_time request: {"type": "set_time", "version": 1, "nonce": ..., "host_time": {"realtime_ns": N}},
// sent to a guest that keeps its identity but whose clock stopped while the host paused or restored it.
// Answered with an ack without a generation.
struct TimeRequest {
  std::string nonce;
  int64_t host_realtime_ns = 0;  // > 0
};

// A freeze request: {"type": "freeze", "version": 1, "nonce": ..., "thaw_after_ms": N}. The guest freezes
// its filesystems (FIFREEZE) so its disks stop changing while the host captures them with guest RAM,
// and thaws them by itself after N ms (1..600000) unless a thaw request comes first: a host that died
// in between cannot leave the guest frozen. Answered with an ack carrying "frozen": [mount points].
struct FreezeRequest {
  std::string nonce;
  int64_t thaw_after_ms = 0;
};
inline constexpr int64_t kMaxThawAfterMs = 600000;

// A thaw request: {"type": "thaw", "version": 1, "nonce": ...}. Answered with an ack carrying
// "thawed": [mount points] and "held": whether the freeze was still in force when the request came
// (false when its deadline thawed it first, or nothing was frozen).
struct ThawRequest {
  std::string nonce;
};

// The "type" of a request line ("set_identity", "set_time"), or "" when it has none.
std::string RequestType(std::string_view line);

// Parses a set_time request line, with ParseIdentityRequest's rules.
Result<TimeRequest> ParseTimeRequest(std::string_view line);

Result<FreezeRequest> ParseFreezeRequest(std::string_view line);
Result<ThawRequest> ParseThawRequest(std::string_view line);

// Parses one request line (without its '\n'). Failures: Unsupported when the version is not 1,
// InvalidArgument for anything else (not JSON, wrong type, a missing or malformed field), the message
// naming the field. Unknown fields are ignored.
Result<IdentityRequest> ParseIdentityRequest(std::string_view line);

// The request's nonce when it has a well-formed one, else "": an error reply still echoes it, so the
// host can tell which request it answers.
std::string NonceOf(std::string_view line);

// The protocol error code for a ParseIdentityRequest failure.
std::string_view RejectionCode(const Status& parse_failure);

// Reply lines, each ending in '\n'.
std::string EncodeAck(std::string_view nonce, uint64_t generation);
std::string EncodeTimeAck(std::string_view nonce);
std::string EncodeFreezeAck(std::string_view nonce, const std::vector<std::string>& frozen);
std::string EncodeThawAck(std::string_view nonce, const std::vector<std::string>& thawed, bool held);
std::string EncodeError(std::string_view nonce, std::string_view code, std::string_view message);

// "02:fe:0a:64:00:05" <-> bytes; parsing accepts either case and rejects multicast addresses.
Result<MacAddress> ParseMac(std::string_view text);
std::string FormatMac(const MacAddress& mac);
// Dotted quad <-> network byte order.
Result<uint32_t> ParseIpv4(std::string_view text);
std::string FormatIpv4(uint32_t address);

}  // namespace fe::hypervisor::forkagent
