#include "hypervisor/firecracker/controller.h"

#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <thread>

#include "base/unique_fd.h"
#include "hypervisor/firecracker/api_client.h"
#include "hypervisor/firecracker/instance_files.h"
#include "base/confined_dir.h"
#include "snapshot/path_rewrite.h"

namespace fe::hypervisor::firecracker {
namespace {

Status NotAFirecrackerVersion(std::string_view text) {
  std::string message = "'";
  message += text;
  message += "' is not a firecracker version";
  return Status::InvalidArgument(std::move(message));
}

constexpr FirecrackerVersion kNetworkOverrides{1, 12, 0};
constexpr FirecrackerVersion kVsockOverride{1, 16, 0};

Status TooOld(const FirecrackerVersion& have, const FirecrackerVersion& need, std::string_view feature,
              std::string_view why) {
  return Status::Unsupported("firecracker " + have.ToString() + " cannot restore this fork: " + std::string(feature) +
                             " needs firecracker " + need.ToString() + " (" + std::string(why) + ")");
}

// Whether the process behind `pidfd` has exited within `timeout`.
bool WaitForExit(int pidfd, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    pollfd fd{pidfd, POLLIN, 0};
    int ready = ::poll(&fd, 1, static_cast<int>(std::max<int64_t>(left.count(), 0)));
    if (ready > 0) return true;
    if (ready == 0) return false;
    if (errno != EINTR) return false;
  }
}

class Controller final : public VmController {
 public:
  Controller(std::string api_socket, pid_t pid, UniqueFd pidfd, ControllerOptions options)
      : api_(std::move(api_socket)), pid_(pid), pidfd_(std::move(pidfd)), options_(std::move(options)) {}

  Status Pause() override { return SetState("Paused"); }
  Status Resume() override { return SetState("Resumed"); }

  Status Snapshot(const std::string& snapshot_dir) override {
    if (::mkdir(snapshot_dir.c_str(), 0700) != 0 && errno != EEXIST) {
      return Status::FromErrno(errno, "create snapshot directory", snapshot_dir);
    }
    Json request = {{"snapshot_type", "Full"},
                    {"snapshot_path", snapshot_dir + "/" + std::string(kSnapshotStateName)},
                    {"mem_file_path", snapshot_dir + "/" + std::string(kSnapshotMemoryName)}};
    FE_RETURN_IF_ERROR(api_.Call("PUT", "/snapshot/create", request, options_.snapshot_timeout));
    // Describe what the state embeds, as firecracker itself reports it.
    Result<Json> config = api_.Get("/vm/config", options_.request_timeout);
    if (!config.ok()) return config.status().Annotate("describing the snapshot in " + snapshot_dir);
    Result<SnapshotDevices> devices = ParseSnapshotDevices(*config, "GET /vm/config of " + api_.socket_path());
    if (!devices.ok()) return devices.status();
    return ReplaceFileBeneath(snapshot_dir, kSnapshotDevicesName, EncodeSnapshotDevices(*devices), 0600);
  }

  Status Restore(const std::string& snapshot_dir, const NetworkIdentity& identity,
                 const MemorySource& memory) override {
    Result<Json> version_answer = api_.Get("/version", options_.request_timeout);
    if (!version_answer.ok()) return version_answer.status();
    Result<std::string> version_text =
        StringMember(*version_answer, "firecracker_version", "GET /version", "", /*required=*/true);
    if (!version_text.ok()) return version_text.status();
    Result<FirecrackerVersion> version = ParseFirecrackerVersion(*version_text);
    if (!version.ok()) return version.status();

    std::optional<SnapshotDevices> devices;
    Result<SnapshotDevices> read = ReadSnapshotDevices(snapshot_dir);
    if (read.ok()) {
      devices = std::move(*read);
    } else if (read.status().code() != ErrorCode::kNotFound) {
      return read.status();
    }
    Result<LoadPlan> plan = PlanSnapshotLoad(snapshot_dir, devices, identity, *version, memory);
    if (!plan.ok()) return plan.status();

    std::unique_ptr<SourceAlias> alias;
    if (plan->alias) {
      Result<std::unique_ptr<SourceAlias>> created =
          SourceAlias::Create(pid_, pidfd_.get(), *plan->alias, options_.alias);
      if (!created.ok()) return created.status();
      alias = std::move(*created);
    }
    Status loaded = api_.Call("PUT", "/snapshot/load", plan->request, options_.snapshot_timeout)
                        .Annotate("loading the snapshot in " + snapshot_dir);
    Status unaliased = alias ? alias->Remove() : Status::Ok();
    if (!loaded.ok()) {
      if (unaliased.ok()) return loaded;
      return Status(loaded.code(), loaded.message() + "; removing the alias failed too: " + unaliased.message());
    }
    FE_RETURN_IF_ERROR(unaliased);
    for (const auto& [drive_id, path] : plan->repoint) {
      Json request = {{"drive_id", drive_id}, {"path_on_host", path}};
      FE_RETURN_IF_ERROR(api_.Call("PATCH", "/drives/" + drive_id, request, options_.request_timeout)
                             .Annotate("re-pointing drive " + drive_id + " of the restored fork to " + path));
    }
    return Status::Ok();
  }

  Status Shutdown() override {
    // Ctrl+Alt+Del lets the guest flush and reboot, and firecracker exits on a guest reboot. It fails
    // where there is no i8042 (aarch64) or the API is gone: then the process is killed right away.
    Status asked = api_.Call("PUT", "/actions", Json{{"action_type", "SendCtrlAltDel"}}, options_.request_timeout);
    if (asked.ok() && WaitForExit(pidfd_.get(), options_.shutdown_timeout)) return Status::Ok();
    if (::syscall(SYS_pidfd_send_signal, pidfd_.get(), SIGKILL, nullptr, 0) != 0 && errno != ESRCH) {
      return Status::FromErrno(errno, "kill firecracker process", std::to_string(pid_));
    }
    if (!WaitForExit(pidfd_.get(), std::chrono::seconds(10))) {
      return Status::Io("firecracker process " + std::to_string(pid_) + " did not exit after SIGKILL");
    }
    return Status::Ok();
  }

 private:
  Status SetState(const char* state) {
    return api_.Call("PATCH", "/vm", Json{{"state", state}}, options_.request_timeout);
  }

  ApiClient api_;
  const pid_t pid_;
  const UniqueFd pidfd_;
  const ControllerOptions options_;
};

}  // namespace

std::string FirecrackerVersion::ToString() const {
  return std::to_string(major) + "." + std::to_string(minor) + "." + std::to_string(patch);
}

Result<FirecrackerVersion> ParseFirecrackerVersion(std::string_view text) {
  std::string_view rest = text;
  if (!rest.empty() && rest.front() == 'v') rest.remove_prefix(1);
  int parts[3] = {0, 0, 0};
  for (int i = 0; i < 3; ++i) {
    size_t digits = 0;
    while (digits < rest.size() && rest[digits] >= '0' && rest[digits] <= '9' && digits < 6) ++digits;
    if (digits == 0) {
      if (i == 2) break;  // "1.16" is fine
      return NotAFirecrackerVersion(text);
    }
    parts[i] = std::stoi(std::string(rest.substr(0, digits)));
    rest.remove_prefix(digits);
    if (i < 2) {
      if (rest.empty() || rest.front() != '.') {
        if (i == 1) break;
        return NotAFirecrackerVersion(text);
      }
      rest.remove_prefix(1);
    }
  }
  return FirecrackerVersion{parts[0], parts[1], parts[2]};
}

Result<LoadPlan> PlanSnapshotLoad(const std::string& snapshot_dir, const std::optional<SnapshotDevices>& devices,
                                  const NetworkIdentity& identity, const FirecrackerVersion& version,
                                  const MemorySource& memory) {
  LoadPlan plan;
  const std::string memory_file =
      memory.empty() ? snapshot_dir + "/" + std::string(kSnapshotMemoryName) : memory.shared_file;
  plan.request = {{"snapshot_path", snapshot_dir + "/" + std::string(kSnapshotStateName)},
                  {"mem_backend", {{"backend_type", "File"}, {"backend_path", memory_file}}},
                  {"resume_vm", false}};
  if (!devices) return plan;  // not described: load it as it is

  if (devices->network_interfaces.size() > 1) {
    return Status::Unsupported(snapshot_dir + ": the snapshot has " +
                               std::to_string(devices->network_interfaces.size()) +
                               " network interfaces; a restored VM gets one network identity");
  }
  if (devices->source_alias && !devices->network_interfaces.empty()) {
    // A fork: it must come up on a TAP of its own, never the source's.
    const std::string& snapshot_tap = devices->network_interfaces[0].host_dev_name;
    if (identity.tap_device.empty() || identity.tap_device == snapshot_tap) {
      return Status::InvalidArgument(snapshot_dir + ": a fork of a snapshot using TAP " + snapshot_tap +
                                     " needs a TAP of its own in its network identity");
    }
  }
  if (!devices->network_interfaces.empty() && !identity.tap_device.empty() &&
      devices->network_interfaces[0].host_dev_name != identity.tap_device) {
    if (!version.AtLeast(kNetworkOverrides.major, kNetworkOverrides.minor)) {
      return TooOld(version, kNetworkOverrides, "network_overrides",
                    "the snapshot's TAP " + devices->network_interfaces[0].host_dev_name + " is not this VM's");
    }
    plan.request["network_overrides"] =
        Json::array({{{"iface_id", devices->network_interfaces[0].iface_id}, {"host_dev_name", identity.tap_device}}});
  }
  if (!devices->source_alias) return plan;

  const PathAlias& alias = *devices->source_alias;
  plan.alias = alias;
  const snapshot::PathRewriter rewriter(alias.from, alias.to);
  for (const PmemDevice& pmem : devices->pmem) {
    if (rewriter.Rewrite(pmem.path_on_host)) {
      return Status::Unsupported(snapshot_dir + ": pmem device " + pmem.id + " (" + pmem.path_on_host +
                                 ") lies in the source directory and cannot be re-pointed after a load");
    }
  }
  if (devices->vsock) {
    if (std::optional<std::string> uds_path = rewriter.Rewrite(devices->vsock->uds_path)) {
      if (!version.AtLeast(kVsockOverride.major, kVsockOverride.minor)) {
        return TooOld(version, kVsockOverride, "vsock_override",
                      "without it the fork's vsock device keeps the source's socket " + devices->vsock->uds_path +
                          ", and its guest-initiated connections would reach the source's listeners");
      }
      plan.request["vsock_override"] = {{"uds_path", *uds_path}};
    }
  }
  for (const DriveDevice& drive : devices->drives) {
    if (std::optional<std::string> path = rewriter.Rewrite(drive.path_on_host)) {
      plan.repoint.emplace_back(drive.drive_id, *path);
    }
  }
  return plan;
}

Result<std::unique_ptr<VmController>> ConnectFirecracker(const std::string& api_socket,
                                                         std::chrono::milliseconds timeout, ControllerOptions options) {
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  if (api_socket.empty() || api_socket.size() >= sizeof(address.sun_path)) {
    return Status::InvalidArgument("firecracker API socket path '" + api_socket +
                                   "' does not fit a Unix socket address");
  }
  std::memcpy(address.sun_path, api_socket.c_str(), api_socket.size() + 1);
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  UniqueFd socket;
  while (true) {
    socket.reset(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!socket) return Status::FromErrno(errno, "socket", "for " + api_socket);
    if (::connect(socket.get(), reinterpret_cast<const sockaddr*>(&address), sizeof(address)) == 0) break;
    const int err = errno;
    if (err != ENOENT && err != ECONNREFUSED && err != EINTR) return Status::FromErrno(err, "connect to", api_socket);
    if (std::chrono::steady_clock::now() >= deadline) {
      return Status::FromErrno(
          err, "connect (waited " + std::to_string(timeout.count()) + " ms) to firecracker API socket", api_socket);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ucred peer{};
  socklen_t length = sizeof(peer);
  if (::getsockopt(socket.get(), SOL_SOCKET, SO_PEERCRED, &peer, &length) != 0 || peer.pid <= 0) {
    return Status::FromErrno(errno, "read the peer of", api_socket);
  }
  UniqueFd pidfd(static_cast<int>(::syscall(SYS_pidfd_open, peer.pid, 0)));
  if (!pidfd) return Status::FromErrno(errno, "pidfd_open of the firecracker process behind", api_socket);
  return std::unique_ptr<VmController>(new Controller(api_socket, peer.pid, std::move(pidfd), std::move(options)));
}

}  // namespace fe::hypervisor::firecracker
