// The agent's end of the host channel, as a stream of request lines and a sink for replies.
//
// virtio-serial: the port the host named kIdentitySerialPortName, at /dev/virtio-ports/<name> when
// udev made that link, else found by name under /sys/class/virtio-ports (a minimal guest has no udev).
// While the host side is not connected the kernel's virtio_console reports EOF (read returns 0,
// poll says POLLHUP): the agent waits and retries instead of exiting, and drops any partial line.
// vsock: listens on AF_VSOCK port kIdentityVsockPort, one host connection at a time; a connection
// that closes is replaced by the next one accepted.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "base/status.h"
#include "base/unique_fd.h"

namespace fe::hypervisor::forkagent {

// Splits a byte stream into '\n'-terminated lines of at most `limit` bytes; longer lines are dropped
// whole (and counted), so one oversized message cannot make the agent buffer without bound.
class LineBuffer {
 public:
  explicit LineBuffer(size_t limit) : limit_(limit) {}
  void Append(std::string_view bytes);
  // The next complete line without its '\n', or nullopt.
  std::optional<std::string> Next();
  // Forgets a partial line (the peer went away in the middle of it).
  void DropPartial();
  size_t dropped_lines() const { return dropped_lines_; }

 private:
  std::string pending_;  // complete lines and at most one partial line at the end
  size_t limit_;
  bool discarding_ = false;  // inside an oversized line, until its '\n'
  size_t dropped_lines_ = 0;
};

class Channel {
 public:
  virtual ~Channel() = default;
  // Blocks until the host has sent a complete line and returns it (without '\n'). Fails only when the
  // channel is broken for good (the device vanished, accept failing).
  virtual Result<std::string> ReadLine() = 0;
  // Sends `reply` (with its '\n') to the host that sent the last line.
  virtual Status Write(std::string_view reply) = 0;
};

// The device node of the virtio-serial port `name`: <dev_root>/virtio-ports/<name>, or
// <dev_root>/<vportNpM> when <sys_root>/class/virtio-ports/<vportNpM>/name holds `name`. NotFound
// when neither exists (yet: the name arrives from the host shortly after the device).
Result<std::string> FindVirtioPort(std::string_view name, const std::string& dev_root = "/dev",
                                   const std::string& sys_root = "/sys");

// Waits (indefinitely) for the port `name` to appear, then opens it. `name` may also be a path.
Result<std::unique_ptr<Channel>> OpenSerialChannel(const std::string& name);
// A serial-style channel over an open stream fd (a test's socketpair end); takes ownership.
std::unique_ptr<Channel> SerialChannelOnFd(UniqueFd fd, std::string description);
// Binds and listens on vsock `port` (any CID).
Result<std::unique_ptr<Channel>> OpenVsockChannel(uint32_t port);

}  // namespace fe::hypervisor::forkagent
