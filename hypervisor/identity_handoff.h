// Handing a restored fork its network identity: the host side of the guest-agent protocol.
//
// The problem. A fork restored from a snapshot resumes with the source's memory, so its guest still
// configures the source's MAC and IP (and believes the source's clock). The host has prepared the
// fork's own TAP before the resume; what is missing is the guest side. A small agent in the guest
// listens on a host channel, applies the identity it is sent (with netlink: the NIC that has
// `previous_mac` -- or the only non-loopback NIC -- is set down, gets the new MAC, its addresses are
// flushed, the new address/prefix and a default route via the gateway are added, the neighbour table
// is flushed, the link is set up and a gratuitous ARP announces it; the clock is stepped to the host's)
// and acknowledges only once all of it is applied. The host waits for that acknowledgement.
//
// The transport is a connected byte stream given as a file descriptor: for Cloud Hypervisor and
// Firecracker a vsock connection through the hypervisor's vsock Unix socket ("CONNECT <port>\n",
// see ConnectHybridVsock below); for QEMU the Unix socket of a virtio-serial port. The guest's
// agent (arriving with the end-to-end issue) listens on vsock port kIdentityVsockPort, or on the
// virtio-serial port named kIdentitySerialPortName.
//
// Protocol "forkengine identity handoff", version 1: line-delimited JSON, one UTF-8 JSON object per
// '\n'-terminated line, at most kMaxLineBytes per line. The host speaks first and sends one request;
// the guest answers with exactly one line:
//
//   host -> guest  {"type": "set_identity", "version": 1, "nonce": "<32 hex digits>",
//                   "generation": 7,
//                   "identity": {"mac": "02:fe:0a:64:00:05", "ipv4": "10.100.0.5",
//                                "prefix_length": 16, "gateway": "10.100.0.1"},
//                   "previous_mac": "02:fe:0a:64:00:02",
//                   "host_time": {"realtime_ns": 1732550000123456789}}
//   guest -> host  {"type": "ack", "version": 1, "nonce": "<the same>", "generation": 7}
//              or  {"type": "error", "version": 1, "nonce": "<the same>", "code": "apply_failed",
//                   "message": "RTNETLINK answers: File exists"}
//
// - nonce: 128 random bits per request; an answer with another nonce is not an answer to this
//   request (a stale or foreign reply) and fails the handoff.
// - generation: increases with every identity an instance is given (the engine keeps it); a guest
//   refuses one lower than what it applied last ("code": "stale_generation"), so a delayed retry can
//   never undo a newer identity. Equal generations are idempotent: the guest re-applies and acks.
// - version: a guest that does not speak the request's version answers an error with "code":
//   "unsupported_version" (and may list "supported": [1]).
// - Unknown fields are ignored by both sides (compatible additions within a version).
//
// The engine (engine/lifecycle.cc) hands a restored instance its identity when its guest still has
// another one (a fork's first restore: previous_mac is the source guest's MAC), over the channel its
// plugin named in RestorePlan::identity_channel, with the instance's identity_generation + 1; a
// failure fails the restore, except over vsock when nothing listens on the port (no agent).
//
// Errors of HandOffIdentity: no answer before the timeout -> Io with errno ETIMEDOUT; the guest's
// error -> Unsupported for "unsupported_version", else Io, with the guest's code and message;
// anything else that is not the expected ack (garbage, wrong nonce or generation, the connection
// closed early, a line too long) -> Io naming what was wrong. Every message names the peer.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"
#include "base/unique_fd.h"
#include "hypervisor/forkagent/wire.h"
#include "hypervisor/plugin.h"

namespace fe::hypervisor {

using forkagent::kIdentityProtocolVersion;
using forkagent::kIdentitySerialPortName;
using forkagent::kIdentityVsockPort;
using forkagent::kMaxLineBytes;

struct IdentityHandoff {
  NetworkIdentity identity;  // mac, ipv4, prefix_length and gateway are sent
  std::string previous_mac;  // the NIC to change, as the guest sees it now; empty: its only NIC
  uint64_t generation = 0;
};

// The request line (with its '\n') for `handoff`. `nonce` is 32 lower-case hex digits.
std::string EncodeIdentityRequest(const IdentityHandoff& handoff, std::string_view nonce, int64_t host_realtime_ns);

// 128 random bits as 32 lower-case hex digits.
std::string NewNonce();

// Sends `handoff` over the connected stream `fd` and waits for the guest's acknowledgement, all
// within `timeout`. `peer` names the other end in errors ("guest agent of vm-7 on vsock port 10240").
// The fd stays open (the caller owns it), with its file status flags as they were.
Status HandOffIdentity(int fd, const IdentityHandoff& handoff, std::chrono::milliseconds timeout,
                       std::string_view peer);

// Setting the clock of a guest that keeps its identity (the host paused or restored it, and its clock
// stopped meanwhile): {"type": "set_time", "version": 1, "nonce": ..., "host_time": {"realtime_ns":
// N}}, answered by an ack without a generation. The request line, with its '\n'.
std::string EncodeTimeRequest(std::string_view nonce, int64_t host_realtime_ns);

// Sends a set_time request over `fd` and waits for the ack within `timeout`. An agent that does not know
// set_time (it answers invalid_request) is Unsupported; other failures are HandOffIdentity's.
Status SetGuestClock(int fd, std::chrono::milliseconds timeout, std::string_view peer);

// Freezing the guest's filesystems while the host captures its disks with its RAM (a background
// snapshot of a running VM, engine/background_fork.cc): {"type": "freeze", "version": 1, "nonce": ...,
// "thaw_after_ms": N} is answered by an ack with "frozen": [mount points] once every read-write
// block-device filesystem is frozen (FIFREEZE; none in a guest without one), or an error when one cannot
// be (the agent then thawed what it froze). The guest thaws by itself N ms later unless {"type": "thaw",
// ...} comes first; its ack says "thawed": [...] and "held": whether the freeze was still in force. The
// agent also thaws before it applies a set_identity (a fork starts thawed). An agent without them
// answers invalid_request: Unsupported here; a guest that answers it cannot freeze (a swap disk, a
// filesystem without freeze; it thawed what it froze) is FailedPrecondition with its message.
Result<std::vector<std::string>> FreezeGuestFilesystems(int fd, std::chrono::milliseconds thaw_after,
                                                        std::chrono::milliseconds timeout, std::string_view peer);
struct GuestThaw {
  std::vector<std::string> thawed;
  bool held = false;  // false: the freeze's deadline had thawed the guest already (its disks may have changed)
};
Result<GuestThaw> ThawGuestFilesystems(int fd, std::chrono::milliseconds timeout, std::string_view peer);

// Connects to guest vsock `port` through a hypervisor's vsock Unix socket (Firecracker's uds_path,
// Cloud Hypervisor's --vsock socket): connects to `uds_path`, sends "CONNECT <port>\n" and reads the
// "OK <host port>\n" answer, all within `timeout`. Nothing past that line is consumed, so the returned
// stream starts with the guest's first byte. NotFound when the socket does not exist; Io (ETIMEDOUT
// on timeout) when the hypervisor closes the connection (no guest listener on the port) or answers
// anything else.
Result<UniqueFd> ConnectHybridVsock(const std::string& uds_path, uint32_t port, std::chrono::milliseconds timeout);

}  // namespace fe::hypervisor
