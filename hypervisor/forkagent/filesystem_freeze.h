// Freezing the guest's filesystems so its disks stop changing while the host captures them together
// with guest RAM (a fork of a running VM whose RAM is saved in the background: the host clones the
// disks while they are frozen, and the RAM capture happens before the thaw).
//
// What is frozen: every mounted filesystem whose source is a block device and that is mounted
// read-write, with FIFREEZE on its mount point (the kernel writes back its dirty data and blocks new
// writes until FITHAW). Writers block; everything else in the guest runs. A freeze that cannot cover
// every such filesystem fails and thaws what it froze: a disk left writable would not match RAM. An
// active swap area on a block device fails it too (swap writes bypass any filesystem).
//
// A freeze ends with Thaw, or by itself at its deadline (a watchdog thread), so a host that dies in
// between cannot leave the guest frozen; a fork restored from RAM captured during the freeze inherits
// the same deadline. Thaw says whether the freeze still held (the capture then saw frozen disks).
#pragma once

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "base/status.h"
#include "base/unique_fd.h"

namespace fe::hypervisor::forkagent {

// The mount points to freeze, from /proc/self/mounts text, in the order to freeze them (the reverse of
// mount order: a filesystem mounted on top of another is frozen before it). Octal escapes (\040) in
// mount points are decoded.
std::vector<std::string> FreezableMounts(std::string_view proc_mounts);
// The swap areas in /proc/swaps text that are block devices ("partition"), by name.
std::vector<std::string> BlockDeviceSwaps(std::string_view proc_swaps);

struct ThawOutcome {
  std::vector<std::string> thawed;  // mount points thawed by this call
  bool held = false;                // the freeze was still in force (its deadline had not thawed it)
};

// What the agent freezes with; tests give it a fake.
class FilesystemFreezer {
 public:
  virtual ~FilesystemFreezer() = default;
  // Freezes every freezable filesystem until Thaw or `thaw_after`. FailedPrecondition while a freeze
  // is in force. Returns the mount points frozen (none in a guest without a disk filesystem).
  virtual Result<std::vector<std::string>> Freeze(std::chrono::milliseconds thaw_after) = 0;
  virtual Result<ThawOutcome> Thaw() = 0;
};

class SystemFilesystemFreezer : public FilesystemFreezer {
 public:
  explicit SystemFilesystemFreezer(std::string mounts_path = "/proc/self/mounts",
                                   std::string swaps_path = "/proc/swaps");
  ~SystemFilesystemFreezer() override;

  Result<std::vector<std::string>> Freeze(std::chrono::milliseconds thaw_after) override;
  Result<ThawOutcome> Thaw() override;

 private:
  struct Frozen {
    std::string mount_point;
    UniqueFd fd;  // the mount point, held open so the thaw reaches the same filesystem
  };
  // Thaws in the reverse order of freezing; the first error is returned, every one is tried.
  Status ThawLocked(std::vector<std::string>& thawed);
  void Watch();

  std::string mounts_path_;
  std::string swaps_path_;
  std::mutex mutex_;
  std::condition_variable changed_;
  std::vector<Frozen> frozen_;
  std::chrono::steady_clock::time_point deadline_{};
  bool stopping_ = false;
  std::thread watchdog_;
};

}  // namespace fe::hypervisor::forkagent
