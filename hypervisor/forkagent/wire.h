// The wire facts of the identity handoff that both sides must agree on: the host
// (hypervisor/identity_handoff.h) and the guest agent (this folder), which links base/ only.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace fe::hypervisor::forkagent {

inline constexpr int kIdentityProtocolVersion = 1;
// The vsock port the agent listens on (Cloud Hypervisor, Firecracker) ...
inline constexpr uint32_t kIdentityVsockPort = 10240;
// ... or the name of its virtio-serial port (QEMU).
inline constexpr std::string_view kIdentitySerialPortName = "org.forkengine.identity.0";
// The longest line either side sends or accepts.
inline constexpr size_t kMaxLineBytes = 64 * 1024;

}  // namespace fe::hypervisor::forkagent
