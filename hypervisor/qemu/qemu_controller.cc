#include "hypervisor/qemu/qemu_controller.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <random>
#include <thread>

#include "base/unique_fd.h"

#include "hypervisor/qemu/qemu_argv.h"
#include "hypervisor/qemu/qemu_config.h"
#include "base/atomic_file.h"
#include "base/confined_dir.h"

namespace fe::hypervisor::qemu {
namespace {

using nlohmann::json;
using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

// When QEMU emitted `event` ({"timestamp": {"seconds", "microseconds"}}, its realtime clock).
std::chrono::microseconds EventTime(const json& event) {
  const json timestamp = event.value("timestamp", json::object());
  return std::chrono::seconds(timestamp.value("seconds", int64_t{0})) +
         std::chrono::microseconds(timestamp.value("microseconds", int64_t{0}));
}

std::string Nonce() {
  std::random_device random;
  return std::to_string(random()) + std::to_string(random());
}

std::string VersionText(const json& version) {
  const json qemu = version.value("qemu", json::object());
  return std::to_string(qemu.value("major", 0)) + "." + std::to_string(qemu.value("minor", 0)) + "." +
         std::to_string(qemu.value("micro", 0));
}

}  // namespace

Result<SnapshotInfo> ReadSnapshotInfo(const std::string& snapshot_dir) {
  const std::string path = snapshot_dir + "/" + kSnapshotInfoFile;
  Result<std::string> text = ReadFileBeneath(snapshot_dir, kSnapshotInfoFile);
  if (!text.ok()) return text.status();
  json root = json::parse(*text, nullptr, /*allow_exceptions=*/false);
  if (root.is_discarded() || !root.is_object()) {
    return Status::InvalidArgument(path + ": expected a JSON object");
  }
  SnapshotInfo info;
  if (root.value("format", "") != "qemu-migration") {
    return Status::InvalidArgument(path + ": field 'format': expected \"qemu-migration\"");
  }
  if (!root.contains("state_file") || !root["state_file"].is_string()) {
    return Status::InvalidArgument(path + ": field 'state_file': expected a string");
  }
  info.state_file = root["state_file"].get<std::string>();
  if (info.state_file.empty() || info.state_file.find('/') != std::string::npos) {
    return Status::InvalidArgument(path + ": field 'state_file': expected a file name");
  }
  if (root.contains("ignore_shared_memory")) {
    if (!root["ignore_shared_memory"].is_boolean()) {
      return Status::InvalidArgument(path + ": field 'ignore_shared_memory': expected true or false");
    }
    info.ignore_shared_memory = root["ignore_shared_memory"].get<bool>();
  }
  return info;
}

Status QemuController::Pause() { return qmp_.Execute("stop", nullptr, timeouts_.command).status(); }

Status QemuController::Resume() { return qmp_.Execute("cont", nullptr, timeouts_.command).status(); }

Result<std::string> QemuController::RunState() {
  Result<json> status = qmp_.Execute("query-status", nullptr, timeouts_.command);
  if (!status.ok()) return status.status();
  if (!status->contains("status") || !(*status)["status"].is_string()) {
    return Status::Io("qmp " + qmp_.socket_path() + ": query-status without a status: " + status->dump());
  }
  return (*status)["status"].get<std::string>();
}

Result<bool> QemuController::HasSharedMemory() {
  Result<json> memdevs = qmp_.Execute("query-memdev", nullptr, timeouts_.command);
  if (!memdevs.ok()) return memdevs.status();
  if (!memdevs->is_array()) return false;
  return std::any_of(memdevs->begin(), memdevs->end(), [](const json& memdev) { return memdev.value("share", false); });
}

Status QemuController::SetCapabilities(bool ignore_shared, bool background) {
  // Both, every time: capabilities outlive a migration, and a background one left on by a forkd that
  // died mid-save would turn the next standby's snapshot into one the guest runs through.
  json arguments = {{"capabilities", json::array({{{"capability", "x-ignore-shared"}, {"state", ignore_shared}},
                                                  {{"capability", "background-snapshot"}, {"state", background}}})}};
  return qmp_.Execute("migrate-set-capabilities", arguments, timeouts_.command).status();
}

Status QemuController::WaitForMigration(const std::string& what) {
  const Clock::time_point deadline = Clock::now() + timeouts_.migration;
  milliseconds pause{1};
  for (;;) {
    Result<json> info = qmp_.Execute("query-migrate", nullptr, timeouts_.command);
    if (!info.ok()) return info.status().Annotate(what);
    // An incoming migration that has not started yet reports {}.
    const std::string status = info->value("status", "");
    if (status == "completed") return Status::Ok();
    if (status == "failed" || status == "cancelled") {
      return Status::Io(what + ": migration " + status + ": " +
                        info->value("error-desc", std::string("no reason given")));
    }
    if (Clock::now() >= deadline) {
      return Status::Io(what + ": migration still \"" + status + "\" after " +
                        std::to_string(timeouts_.migration.count()) + " ms");
    }
    std::this_thread::sleep_for(pause);
    // A device-state save ends within milliseconds: polls stay a few ms apart so as not to stretch the pause.
    pause = std::min(pause * 2, milliseconds(4));
  }
}

Status QemuController::Snapshot(const std::string& snapshot_dir) {
  const std::string what = "qemu snapshot to " + snapshot_dir;
  if (::mkdir(snapshot_dir.c_str(), 0755) != 0 && errno != EEXIST) {
    return Status::FromErrno(errno, what + ": mkdir", snapshot_dir);
  }
  FE_RETURN_IF_ERROR(Pause().Annotate(what));
  Result<bool> shared = HasSharedMemory();
  if (!shared.ok()) return shared.status().Annotate(what);
  FE_RETURN_IF_ERROR(SetCapabilities(*shared, /*background=*/false).Annotate(what));

  // QEMU writes the stream straight into a file forkd opened and passed it (getfd, migrate "fd:"): no
  // shell and no cat for QEMU to spawn while the VM is paused. Durability is the caller's (plugin.h).
  Result<StreamFile> stream = StartMigrationToFile(snapshot_dir, what);
  if (!stream.ok()) return stream.status();
  return FinishSnapshot(std::move(*stream), *shared, what);
}

Result<QemuController::StreamFile> QemuController::StartMigrationToFile(const std::string& snapshot_dir,
                                                                        const std::string& what) {
  const std::string nonce = Nonce();
  StreamFile stream;
  stream.snapshot_dir = snapshot_dir;
  stream.partial = snapshot_dir + "/" + kStateFile + ".partial-" + nonce;
  stream.fd = UniqueFd(::open(stream.partial.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644));
  if (!stream.fd) return Status::FromErrno(errno, what + ": open", stream.partial);
  const std::string fd_name = "fe-snapshot-" + nonce;
  Status status = qmp_.ExecuteWithFd("getfd", json{{"fdname", fd_name}}, stream.fd.get(), timeouts_.command)
                      .status()
                      .Annotate(what);
  if (status.ok()) {
    status = qmp_.Execute("migrate", json{{"uri", "fd:" + fd_name}}, timeouts_.command).status().Annotate(what);
    // A migration that started owns the fd (and closes it); one that did not leaves it registered.
    if (!status.ok()) (void)qmp_.Execute("closefd", json{{"fdname", fd_name}}, timeouts_.command);
  }
  if (!status.ok()) {
    ::unlink(stream.partial.c_str());
    return status;
  }
  return stream;
}

Status QemuController::FinishSnapshot(StreamFile stream, bool ignore_shared, const std::string& what) {
  const std::string& partial = stream.partial;
  const std::string state = stream.snapshot_dir + "/" + kStateFile;
  Status status = WaitForMigration(what);
  struct stat info {};
  if (status.ok() && ::fstat(stream.fd.get(), &info) != 0) {
    status = Status::FromErrno(errno, what + ": fstat", partial);
  }
  if (status.ok() && info.st_size == 0) status = Status::Io(what + ": migration completed but wrote nothing");
  if (status.ok() && ::rename(partial.c_str(), state.c_str()) != 0) {
    status = Status::FromErrno(errno, what + ": rename " + partial + " to", state);
  }
  if (!status.ok()) {
    ::unlink(partial.c_str());
    return status;
  }
  json description = {{"format", "qemu-migration"},
                      {"state_file", kStateFile},
                      {"ignore_shared_memory", ignore_shared},
                      {"state_bytes", static_cast<uint64_t>(info.st_size)},
                      {"qemu_version", VersionText(qmp_.version())}};
  return ReplaceFileBeneath(stream.snapshot_dir, kSnapshotInfoFile, description.dump(2) + "\n").Annotate(what);
}

Result<BackgroundCapture> QemuController::StartBackgroundSnapshot(const std::string& snapshot_dir) {
  const std::string what = "qemu background snapshot to " + snapshot_dir;
  if (background_) return Status::FailedPrecondition(what + ": one is already under way");
  if (::mkdir(snapshot_dir.c_str(), 0755) != 0 && errno != EEXIST) {
    return Status::FromErrno(errno, what + ": mkdir", snapshot_dir);
  }
  Result<bool> shared = HasSharedMemory();
  if (!shared.ok()) return shared.status().Annotate(what);
  if (*shared) {
    return Status::Unsupported(what +
                               ": guest RAM is a shared file, which userfaultfd cannot write-protect (fork it on "
                               "the live path instead)");
  }
  FE_RETURN_IF_ERROR(SetCapabilities(/*ignore_shared=*/false, /*background=*/true).Annotate(what));
  // The capture is told by the STOP and RESUME events that follow the migrate command, not older ones.
  qmp_.DropQueuedEvents("STOP");
  qmp_.DropQueuedEvents("RESUME");
  Result<StreamFile> stream = StartMigrationToFile(snapshot_dir, what);
  if (!stream.ok()) {
    (void)SetCapabilities(false, false);
    return stream.status();
  }
  background_ = std::move(*stream);
  // QEMU prepares (reading every page of guest RAM: it grows with RAM size, hence the migration's
  // deadline), stops the VM (STOP, unless it was paused), saves its device state, write-protects
  // guest RAM and starts the VM again (RESUME; 7.2 does so whatever the run state was before): the
  // save goes on while the guest runs.
  const Clock::time_point deadline = Clock::now() + timeouts_.migration;
  for (;;) {
    Result<json> resumed = qmp_.WaitForEvent("RESUME", milliseconds(20));
    if (resumed.ok()) {
      BackgroundCapture capture;
      Result<json> stopped = qmp_.WaitForEvent("STOP", milliseconds(0));
      if (stopped.ok()) capture.vm_stopped = EventTime(*resumed) - EventTime(*stopped);
      return capture;
    }
    Result<json> info = qmp_.Execute("query-migrate", nullptr, timeouts_.command);
    if (!info.ok()) return AbandonBackgroundSnapshot(info.status().Annotate(what));
    const std::string status = info->value("status", "");
    // Done, or failed: FinishBackgroundSnapshot says which. A VM QEMU left paused is resumed by the caller.
    if (status == "completed" || status == "failed" || status == "cancelled") return BackgroundCapture{};
    if (Clock::now() >= deadline) {
      return AbandonBackgroundSnapshot(Status::Io(what + ": no capture after " +
                                                  std::to_string(timeouts_.migration.count()) + " ms of migration \"" +
                                                  status + "\""));
    }
  }
}

Status QemuController::AbandonBackgroundSnapshot(Status why) {
  (void)qmp_.Execute("migrate_cancel", nullptr, timeouts_.command);
  (void)WaitForMigration("cancelling the background snapshot");
  if (background_) ::unlink(background_->partial.c_str());
  background_.reset();
  (void)SetCapabilities(false, false);
  return why;
}

Result<std::vector<std::string>> QemuController::FinishBackgroundSnapshot() {
  if (!background_) return Status::FailedPrecondition("qemu background snapshot: none was started");
  StreamFile stream = std::move(*background_);
  background_.reset();
  const std::string what = "qemu background snapshot to " + stream.snapshot_dir;
  Status finished = FinishSnapshot(std::move(stream), /*ignore_shared=*/false, what);
  Status reset = SetCapabilities(false, false).Annotate(what + ": turning background-snapshot off");
  if (!finished.ok()) return finished;
  if (!reset.ok()) return reset;
  return std::vector<std::string>{kStateFile, kSnapshotInfoFile};
}

Status QemuController::Restore(const std::string& snapshot_dir, const NetworkIdentity& /*identity*/,
                               const MemorySource& memory) {
  const std::string what = "qemu restore from " + snapshot_dir;
  Result<SnapshotInfo> info = ReadSnapshotInfo(snapshot_dir);
  if (!info.ok()) return info.status().Annotate(what);
  if (!memory.empty() && !info->ignore_shared_memory) {
    return Status::InvalidArgument(what + ": the snapshot holds guest RAM in its stream, so it cannot run on " +
                                   memory.shared_file + " (shared memory needs a snapshot of a memory_file VM)");
  }
  // QEMU waits forever on a state stream that never comes: check the file before asking for it.
  const std::string state = snapshot_dir + "/" + info->state_file;
  if (::access(state.c_str(), R_OK) != 0) return Status::FromErrno(errno, what + ": access", state);

  Result<std::string> run_state = RunState();
  if (!run_state.ok()) return run_state.status().Annotate(what);
  if (*run_state != "inmigrate") {
    return Status::InvalidArgument(what + ": QEMU is \"" + *run_state +
                                   "\", not waiting for a restore (start it with -incoming defer)");
  }
  // A shared-memory fork's RAM is the template's file mapped privately (share=off): nothing to load.
  if (info->ignore_shared_memory && memory.empty()) {
    Result<bool> shared = HasSharedMemory();
    if (!shared.ok()) return shared.status().Annotate(what);
    if (!*shared) {
      return Status::InvalidArgument(what +
                                     ": the snapshot left guest RAM in a shared memory file, but this QEMU has none");
    }
  }
  FE_RETURN_IF_ERROR(SetCapabilities(info->ignore_shared_memory, /*background=*/false).Annotate(what));
  FE_RETURN_IF_ERROR(qmp_.Execute("migrate-incoming", json{{"uri", ExecCatFromUri(state)}}, timeouts_.command)
                         .status()
                         .Annotate(what));
  FE_RETURN_IF_ERROR(WaitForMigration(what));
  return Resume().Annotate(what);
}

Status QemuController::Shutdown() {
  Result<json> quit = qmp_.Execute("quit", nullptr, timeouts_.command);
  // QEMU may close the socket before its reply is read; either way it is going down.
  if (!quit.ok() && quit.status().code() != ErrorCode::kIo) return quit.status().Annotate("qemu shutdown");
  return qmp_.WaitForClose(timeouts_.command).Annotate("qemu shutdown");
}

Result<std::unique_ptr<VmController>> ConnectController(const std::string& api_socket, milliseconds timeout,
                                                        ControllerTimeouts timeouts) {
  Result<QmpClient> qmp = QmpClient::Connect(api_socket, timeout);
  if (!qmp.ok()) return qmp.status();
  return std::unique_ptr<VmController>(std::make_unique<QemuController>(std::move(*qmp), timeouts));
}

}  // namespace fe::hypervisor::qemu
