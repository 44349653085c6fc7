// VmController for cloud-hypervisor, over its REST API (api_client.h):
//   Pause    PUT vm.pause                 Resume   PUT vm.resume
//   Snapshot PUT vm.snapshot  {"destination_url": "file://<dir>"}  (creates <dir> when missing;
//            cloud-hypervisor creates config.json, state.json, memory-ranges there exclusively, so
//            <dir> must not hold an older snapshot)
//   Restore  PUT vm.restore   {"source_url": "file://<dir>"}       (the VM stays paused)
//   Shutdown PUT vmm.shutdown (the cloud-hypervisor process exits)
// Restore ignores the identity argument: the fork's TAP is already named in the snapshot's
// config.json (PrepareFork), and handing the identity to the guest is the engine's work after resume.
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "base/status.h"
#include "hypervisor/cloud_hypervisor/api_client.h"
#include "hypervisor/plugin.h"

namespace fe::hypervisor::cloud_hypervisor {

// Bounds one request; snapshots and restores of large guests write or read all their memory.
inline constexpr std::chrono::milliseconds kRequestTimeout = std::chrono::minutes(10);

class Controller : public VmController {
 public:
  Controller(std::string api_socket, std::chrono::milliseconds request_timeout = kRequestTimeout);

  Status Pause() override;
  Status Resume() override;
  Status Snapshot(const std::string& snapshot_dir) override;
  // cloud-hypervisor copies the snapshot's memory: a MemorySource is refused (Unsupported).
  Status Restore(const std::string& snapshot_dir, const NetworkIdentity& identity, const MemorySource& memory) override;
  Status Shutdown() override;

 private:
  ApiClient client_;
};

// Waits (polling vmm.ping) until the cloud-hypervisor at `api_socket` answers, at most `timeout`;
// then returns its controller. The error of the last attempt, annotated with the wait, otherwise.
Result<std::unique_ptr<VmController>> ConnectController(const std::string& api_socket,
                                                        std::chrono::milliseconds timeout);

}  // namespace fe::hypervisor::cloud_hypervisor
