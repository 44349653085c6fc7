// A running guest's filesystems frozen by its agent (hypervisor::FreezeGuestFilesystems) while the host
// captures its disks together with its RAM: the background fork clones the disks and lets the
// hypervisor capture RAM while the guest runs, writers in it blocked, instead of pausing it.
//
// The freeze holds one connection to the agent open (a QEMU virtio-serial socket takes one client at a
// time: nothing else reaches the agent until Thaw). The guest thaws by itself after `thaw_after` if
// forkd never says so (it died, or the capture took longer): Thaw then reports that the freeze did not
// hold, and the capture is not to be trusted. A GuestFreeze destroyed without Thaw thaws, best effort.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "base/status.h"
#include "base/unique_fd.h"
#include "hypervisor/plugin.h"

namespace fe::engine::vm {

// Where a VM's guest agent is reached, and how long it may take to answer.
struct AgentAccess {
  hypervisor::IdentityChannel channel;
  std::chrono::milliseconds timeout{10'000};
  std::string who;  // the instance, for messages
};

class GuestFreeze {
 public:
  // Freezes the guest's filesystems. Unsupported when the guest cannot be frozen: no agent channel,
  // nothing listening, an agent without freeze, or one that refused (a swap disk, a filesystem that
  // cannot freeze), the message saying why; any other failure is the agent's error. After a failure
  // a thaw has been asked for, in case the agent froze after all.
  static Result<GuestFreeze> Freeze(const AgentAccess& agent, std::chrono::milliseconds thaw_after);

  GuestFreeze(GuestFreeze&&) = default;
  GuestFreeze& operator=(GuestFreeze&&) = default;
  ~GuestFreeze();

  // The mount points frozen (none for a guest without a disk filesystem).
  const std::vector<std::string>& mounts() const { return mounts_; }

  // Thaws and hangs up. FailedPrecondition when the freeze had ended at its deadline already.
  Status Thaw();

 private:
  GuestFreeze(UniqueFd stream, std::string peer, std::chrono::milliseconds timeout, std::vector<std::string> mounts)
      : stream_(std::move(stream)), peer_(std::move(peer)), timeout_(timeout), mounts_(std::move(mounts)) {}

  UniqueFd stream_;
  std::string peer_;
  std::chrono::milliseconds timeout_;
  std::vector<std::string> mounts_;
};

}  // namespace fe::engine::vm
