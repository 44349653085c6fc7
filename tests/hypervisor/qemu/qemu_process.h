// Test helpers for running real QEMUs: a child-process owner that kills and reaps on every path, the
// instance configs the tests start from, and a tiny guest (the Debian kernel booting a busybox
// initramfs whose /init prints "tick N" on the serial port every 200 ms).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "base/status.h"
#include "hypervisor/qemu/qemu_config.h"

namespace fe::hypervisor::qemu::test {

// A started process with stdout and stderr in `log_path`. Destruction SIGKILLs and reaps it.
class ChildProcess {
 public:
  static Result<ChildProcess> Start(const std::vector<std::string>& argv, const std::string& log_path);
  ChildProcess(ChildProcess&& other) noexcept;
  ChildProcess& operator=(ChildProcess&&) = delete;
  ChildProcess(const ChildProcess&) = delete;
  ~ChildProcess();

  // The exit status once it has exited within `timeout`, nullopt while it runs.
  std::optional<int> Wait(std::chrono::milliseconds timeout);
  // Its log so far.
  std::string Log() const;

 private:
  ChildProcess(pid_t pid, std::string log_path) : pid_(pid), log_path_(std::move(log_path)) {}
  pid_t pid_ = -1;
  std::string log_path_;
  std::optional<int> status_;
};

// Why QEMU cannot run here ("" when it can), and why the ticker guest cannot (no kernel/busybox).
std::string QemuUnavailableReason();
std::string GuestUnavailableReason();

// A QEMU with no guest at all (-machine none): enough for QMP, stop/cont and migration of an empty
// machine. Its QMP socket is <dir>/qmp.sock.
Config MachineNoneConfig(const std::string& dir);

// The ticker guest's instance in `dir`: kernel from /boot (or FE_GUEST_KERNEL, kept outside the
// directory), initramfs <dir>/initrd.cpio, a writable 1 MiB drive <dir>/disk.raw, serial to
// <dir>/serial.log, a virtio-serial port on <dir>/identity.sock, QMP on <dir>/qmp.sock, a vmgenid.
// Writes the initramfs and the disk.
Result<Config> MakeTickerInstance(const std::string& dir, uint64_t memory_mib);

// The "tick N" numbers in a serial log, in order (a partial last line is ignored).
std::vector<int> Ticks(const std::string& serial_log);
// Waits until the log at `path` holds a tick >= `at_least`; false at the timeout.
bool WaitForTick(const std::string& path, int at_least, std::chrono::milliseconds timeout);

}  // namespace fe::hypervisor::qemu::test
