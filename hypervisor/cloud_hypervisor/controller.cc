#include "hypervisor/cloud_hypervisor/controller.h"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <thread>

#include <nlohmann/json.hpp>

namespace fe::hypervisor::cloud_hypervisor {
namespace {

Result<std::string> FileUrl(const std::string& dir, std::string_view operation) {
  if (dir.empty() || dir.front() != '/') {
    return Status::InvalidArgument("cloud-hypervisor " + std::string(operation) + ": '" + dir +
                                   "' is not an absolute directory");
  }
  return "file://" + dir;
}

}  // namespace

Controller::Controller(std::string api_socket, std::chrono::milliseconds request_timeout)
    : client_(std::move(api_socket), request_timeout) {}

Status Controller::Pause() { return client_.Call("PUT", "vm.pause"); }

Status Controller::Resume() { return client_.Call("PUT", "vm.resume"); }

Status Controller::Snapshot(const std::string& snapshot_dir) {
  Result<std::string> url = FileUrl(snapshot_dir, "snapshot");
  if (!url.ok()) return url.status();
  if (::mkdir(snapshot_dir.c_str(), 0750) != 0 && errno != EEXIST) {
    return Status::FromErrno(errno, "cloud-hypervisor snapshot: mkdir", snapshot_dir);
  }
  return client_.Call("PUT", "vm.snapshot", nlohmann::json{{"destination_url", *url}}.dump());
}

Status Controller::Restore(const std::string& snapshot_dir, const NetworkIdentity& /*identity*/,
                           const MemorySource& memory) {
  if (!memory.empty()) {
    return Status::Unsupported("cloud-hypervisor restore from " + snapshot_dir + ": it cannot map guest memory from " +
                               memory.shared_file + " (it copies a snapshot's memory at restore)");
  }
  Result<std::string> url = FileUrl(snapshot_dir, "restore");
  if (!url.ok()) return url.status();
  return client_.Call("PUT", "vm.restore", nlohmann::json{{"source_url", *url}}.dump());
}

Status Controller::Shutdown() { return client_.Call("PUT", "vmm.shutdown"); }

Result<std::unique_ptr<VmController>> ConnectController(const std::string& api_socket,
                                                        std::chrono::milliseconds timeout) {
  using Clock = std::chrono::steady_clock;
  const Clock::time_point deadline = Clock::now() + timeout;
  std::chrono::milliseconds pause(5);
  Status last;
  while (true) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    ApiClient ping(api_socket, std::clamp(left, std::chrono::milliseconds(50), std::chrono::milliseconds(1000)));
    last = ping.Call("GET", "vmm.ping");
    if (last.ok()) return std::unique_ptr<VmController>(std::make_unique<Controller>(api_socket));
    // Waits out the whole timeout: the last pause is cut to what is left, never skipped.
    const auto remaining = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now());
    if (remaining <= std::chrono::milliseconds(0)) break;
    std::this_thread::sleep_for(std::min(pause, remaining));
    pause = std::min(pause * 2, std::chrono::milliseconds(100));
  }
  return last.Annotate("cloud-hypervisor at " + api_socket + " did not answer within " +
                       std::to_string(timeout.count()) + " ms");
}

}  // namespace fe::hypervisor::cloud_hypervisor
