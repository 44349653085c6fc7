#include "engine/vm/vm_runner.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <optional>
#include <thread>

#include "base/unique_fd.h"
#include "engine/vm/guest_freeze.h"
#include "engine/vm/vm_process.h"

namespace fe::engine::vm {
namespace {

using Clock = std::chrono::steady_clock;
using hypervisor::LaunchCommand;
using hypervisor::LaunchMode;
using hypervisor::VmController;
using std::chrono::milliseconds;

constexpr char kLogFile[] = "hypervisor.log";
constexpr size_t kLogTailBytes = 4096;
constexpr int kLogTailLines = 20;
// The API may answer just before the deadline; the hypervisor still gets this long to greet.
constexpr milliseconds kMinimumConnectTime{1000};

std::string LogPath(const VmContext& context) { return context.runtime_dir + "/" + kLogFile; }

milliseconds Left(Clock::time_point deadline) {
  return std::max(milliseconds(0), std::chrono::duration_cast<milliseconds>(deadline - Clock::now()));
}

// The last lines the process wrote to its log (from `offset`, where its start began).
std::string LogTail(const std::string& path, uint64_t offset) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  struct stat info {};
  if (!fd || ::fstat(fd.get(), &info) != 0) return "(" + path + " unreadable: " + std::strerror(errno) + ")";
  const uint64_t size = static_cast<uint64_t>(info.st_size);
  const uint64_t from = std::max(offset, size > kLogTailBytes ? size - kLogTailBytes : 0);
  std::string text(size > from ? size - from : 0, '\0');
  const ssize_t got = ::pread(fd.get(), text.data(), text.size(), static_cast<off_t>(from));
  text.resize(got > 0 ? static_cast<size_t>(got) : 0);
  while (!text.empty() && text.back() == '\n') text.pop_back();
  size_t start = text.size();
  for (int lines = 0; lines < kLogTailLines && start > 0; ++lines) {
    const size_t newline = text.rfind('\n', start - 1);
    start = newline == std::string::npos ? 0 : newline;
  }
  if (start < text.size() && text[start] == '\n') ++start;
  const std::string tail = text.substr(start);
  return tail.empty() ? "(" + path + " holds nothing from this start)" : "last lines of " + path + ":\n" + tail;
}

Status WithLog(const Status& status, const VmContext& context, const VmProcess& process) {
  return Status(status.code(), status.message() + "\n" + LogTail(LogPath(context), process.log_offset()));
}

// Kills a started process on a failure path, so a failed start leaves nothing running.
Status Abandon(VmProcess& process, Status failure) {
  Status killed = process.Kill();
  if (killed.ok()) return failure;
  return Status(failure.code(), failure.message() + "; killing it failed too: " + killed.message());
}

enum class SocketProbe { kAnswers, kAbsent, kUnknown };

// Whether something accepts connections on the Unix socket `path`.
SocketProbe ProbeSocket(const std::string& path) {
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  if (path.size() >= sizeof(address.sun_path)) return SocketProbe::kUnknown;
  std::memcpy(address.sun_path, path.c_str(), path.size() + 1);
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) return SocketProbe::kUnknown;
  if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&address), sizeof(address)) == 0) {
    return SocketProbe::kAnswers;
  }
  return (errno == ENOENT || errno == ECONNREFUSED) ? SocketProbe::kAbsent : SocketProbe::kUnknown;
}

// A socket file nobody serves (left by a hypervisor that was killed) is removed: some hypervisors
// refuse to bind over it. One that answers belongs to a live hypervisor: starting another is refused,
// or the new one's controller could end up talking to the old VM.
Status ClaimApiSocket(const std::string& path) {
  struct stat info {};
  if (::lstat(path.c_str(), &info) != 0) {
    return errno == ENOENT ? Status::Ok() : Status::FromErrno(errno, "lstat API socket", path);
  }
  if (!S_ISSOCK(info.st_mode)) return Status::Ok();  // the hypervisor's own business
  if (ProbeSocket(path) == SocketProbe::kAnswers) {
    return Status::FailedPrecondition("API socket " + path + " already answers: another hypervisor process serves it");
  }
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) return Status::FromErrno(errno, "unlink stale API socket", path);
  return Status::Ok();
}

// Waits until the API socket answers, then connects the plugin's controller. Fails early, with the
// exit status and the log, when the process exits first.
Result<std::unique_ptr<VmController>> WaitForApi(const VmContext& context, VmProcess& process,
                                                 const std::string& api_socket) {
  const Clock::time_point deadline = Clock::now() + context.timeout;
  auto exited = [&] {
    // A wrapper that cannot execute the hypervisor: the host cannot run it, as for a missing binary.
    const ErrorCode code = process.ExitedUnableToExecute() ? ErrorCode::kUnsupported : ErrorCode::kIo;
    return WithLog(Status(code, "hypervisor pid " + std::to_string(process.pid()) + " " + process.ExitDescription() +
                                    " before its API socket " + api_socket + " answered"),
                   context, process);
  };
  milliseconds pause{2};
  for (;;) {
    if (process.Exited()) return exited();
    const SocketProbe probe = ProbeSocket(api_socket);
    if (probe != SocketProbe::kAbsent) break;  // answers, or only Connect can tell
    if (Clock::now() >= deadline) {
      return WithLog(Status::Io("hypervisor pid " + std::to_string(process.pid()) + " did not open its API socket " +
                                api_socket + " within " + std::to_string(context.timeout.count()) + " ms"),
                     context, process);
    }
    // Waiting on the pidfd rather than sleeping: an exit ends the wait at once.
    process.WaitForExit(std::min(pause, Left(deadline)));
    pause = std::min(pause * 2, milliseconds(50));
  }
  Result<std::unique_ptr<VmController>> controller =
      context.plugin->Connect(api_socket, std::max(Left(deadline), kMinimumConnectTime));
  if (!controller.ok()) {
    if (process.Exited()) return exited();
    return WithLog(controller.status().Annotate("connecting to hypervisor pid " + std::to_string(process.pid())),
                   context, process);
  }
  return controller;
}

// Connects to the Unix socket `path`, retrying while it is missing or refuses, until `deadline`.
Result<UniqueFd> ConnectUnixSocket(const std::string& path, Clock::time_point deadline) {
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  if (path.size() >= sizeof(address.sun_path)) {
    return Status::InvalidArgument("Unix socket path " + path + " is too long");
  }
  std::memcpy(address.sun_path, path.c_str(), path.size() + 1);
  milliseconds pause{2};
  for (;;) {
    UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!fd) return Status::FromErrno(errno, "socket for", path);
    if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&address), sizeof(address)) == 0) return fd;
    const int error = errno;
    if ((error != ENOENT && error != ECONNREFUSED) || Clock::now() >= deadline) {
      return Status::FromErrno(error, "connect", path);
    }
    std::this_thread::sleep_for(std::min(pause, Left(deadline)));
    pause = std::min(pause * 2, milliseconds(50));
  }
}

struct StartedVm {
  VmProcess process;
  ProcessRecord record;
  std::unique_ptr<VmController> controller;
};

Status CheckContext(const VmContext& context) {
  if (context.plugin == nullptr) return Status::InvalidArgument("VM context without a hypervisor plugin");
  if (context.guest_dir.empty() || context.runtime_dir.empty()) {
    return Status::InvalidArgument("VM context without a guest or runtime directory");
  }
  return Status::Ok();
}

Result<StartedVm> Start(const VmContext& context, LaunchMode mode) {
  FE_RETURN_IF_ERROR(CheckContext(context));
  Result<LaunchCommand> command = context.plugin->Launch(context.guest_dir, mode, context.memory);
  if (!command.ok()) return command.status();
  FE_RETURN_IF_ERROR(ClaimApiSocket(command->api_socket));
  // Unsupported: this host cannot run the hypervisor; the plugin says how to install it.
  auto with_hint = [&](const Status& status) {
    if (status.code() != ErrorCode::kUnsupported || command->install_hint.empty()) return status;
    return Status::Unsupported(status.message() + "\n" + command->install_hint);
  };
  Result<VmProcess> process = VmProcess::Spawn(command->argv, LogPath(context));
  if (!process.ok()) return with_hint(process.status());
  Result<std::unique_ptr<VmController>> controller = WaitForApi(context, *process, command->api_socket);
  if (!controller.ok()) return Abandon(*process, with_hint(controller.status()));
  ProcessRecord record{process->pid(), process->start_time(), command->api_socket};
  return StartedVm{std::move(*process), std::move(record), std::move(*controller)};
}

// Waits for the exit the API was asked for, then kills what is left.
Status EndProcess(VmProcess& process, Clock::time_point deadline) {
  if (process.WaitForExit(Left(deadline))) return Status::Ok();
  return process.Kill();
}

// The running VM of `record`, its API connected, paused. FailedPrecondition when its process is gone.
struct PausedVm {
  VmProcess process;
  std::unique_ptr<VmController> controller;
};

Result<PausedVm> AttachAndPause(const VmContext& context, const ProcessRecord& record, const std::string& what) {
  FE_RETURN_IF_ERROR(CheckContext(context).Annotate(what));
  Result<VmProcess> process = VmProcess::Attach(record.pid, record.start_time);
  if (!process.ok()) return Status::FailedPrecondition(what + ": " + process.status().message());
  Result<std::unique_ptr<VmController>> controller = context.plugin->Connect(record.api_socket, context.timeout);
  if (!controller.ok()) return controller.status().Annotate(what);
  FE_RETURN_IF_ERROR((*controller)->Pause().Annotate(what));
  return PausedVm{std::move(*process), std::move(*controller)};
}

}  // namespace

Result<ProcessRecord> BootVm(const VmContext& context) {
  Result<StartedVm> started = Start(context, LaunchMode::kBoot);
  if (!started.ok()) return started.status().Annotate("booting " + context.guest_dir);
  return started->record;
}

Result<ProcessRecord> RestoreVm(const VmContext& context, const std::string& snapshot_dir) {
  const std::string what = "restoring " + context.guest_dir + " from " + snapshot_dir;
  Result<StartedVm> started = Start(context, LaunchMode::kRestore);
  if (!started.ok()) return started.status().Annotate(what);
  VmProcess& process = started->process;
  Status status = started->controller->Restore(snapshot_dir, context.identity, context.memory);
  // Some plugins' Restore leaves the VM paused (cloud-hypervisor, firecracker); QEMU's continues it,
  // and another `cont` of a running QEMU is a no-op.
  if (status.ok()) status = started->controller->Resume();
  if (!status.ok()) {
    // A hypervisor that cannot load the state may exit: the log says why.
    process.WaitForExit(milliseconds(100));
    return Abandon(process, WithLog(status, context, process).Annotate(what));
  }
  return started->record;
}

Status SnapshotAndStopVm(const VmContext& context, const ProcessRecord& record, const std::string& snapshot_dir) {
  const std::string what = "snapshotting " + context.guest_dir + " into " + snapshot_dir;
  const Clock::time_point deadline = Clock::now() + context.timeout;
  Result<PausedVm> paused = AttachAndPause(context, record, what);
  if (!paused.ok()) return paused.status();
  VmController& vm = *paused->controller;
  VmProcess& process = paused->process;
  if (Status snapshot = vm.Snapshot(snapshot_dir); !snapshot.ok()) {
    Status resumed = vm.Resume();
    if (resumed.ok()) return snapshot.Annotate(what);
    return Status(snapshot.code(), what + ": " + snapshot.message() +
                                       "; resuming the VM failed too (it stays paused): " + resumed.message());
  }
  // The snapshot is complete: the process ends now, gracefully if it can, by SIGKILL otherwise.
  if (!vm.Shutdown().ok() || !process.WaitForExit(Left(deadline))) {
    return process.Kill().Annotate(what + ": the snapshot is written, ending the process");
  }
  return Status::Ok();
}

namespace {

// The API of the VM `record` names, for `what`: FailedPrecondition when that process no longer runs.
Result<std::unique_ptr<VmController>> ConnectToRunningVm(const VmContext& context, const ProcessRecord& record,
                                                         const std::string& what) {
  FE_RETURN_IF_ERROR(CheckContext(context).Annotate(what));
  Result<VmProcess> process = VmProcess::Attach(record.pid, record.start_time);
  if (!process.ok()) return Status::FailedPrecondition(what + ": " + process.status().message());
  Result<std::unique_ptr<VmController>> controller = context.plugin->Connect(record.api_socket, context.timeout);
  if (!controller.ok()) return controller.status().Annotate(what);
  return controller;
}

}  // namespace

Status SnapshotRunningVm(const VmContext& context, const ProcessRecord& record, const std::string& snapshot_dir,
                         const LiveSnapshotSteps& steps) {
  const std::string what = "live snapshot of " + context.guest_dir + " into " + snapshot_dir;
  Result<std::unique_ptr<VmController>> controller = ConnectToRunningVm(context, record, what);
  if (!controller.ok()) return controller.status();
  VmController& vm = **controller;
  if (steps.before_pause) FE_RETURN_IF_ERROR(steps.before_pause().Annotate(what));
  FE_RETURN_IF_ERROR(vm.Pause().Annotate(what));
  if (steps.after_pause) steps.after_pause();
  Status status = vm.Snapshot(snapshot_dir).Annotate(what);
  if (status.ok() && steps.while_paused) status = steps.while_paused();
  Status resumed = vm.Resume();
  if (resumed.ok()) return status;
  if (status.ok()) return resumed.Annotate(what + ": resuming the VM (it stays paused)");
  return Status(status.code(),
                status.message() + "; resuming the VM failed too (it stays paused): " + resumed.message());
}

Result<std::vector<std::string>> SnapshotRunningVmInBackground(const VmContext& context, const ProcessRecord& record,
                                                               const AgentAccess& agent,
                                                               const std::string& snapshot_dir,
                                                               const BackgroundSnapshotSteps& steps) {
  const std::string what = "background snapshot of " + context.guest_dir + " into " + snapshot_dir;
  Result<std::unique_ptr<VmController>> controller = ConnectToRunningVm(context, record, what);
  if (!controller.ok()) return controller.status();
  VmController& vm = **controller;
  if (steps.before_hold) steps.before_hold();
  SourceHold hold;
  // The disks must not change between their clones and the capture of RAM: frozen in the guest, which
  // runs on, or else with the VM paused.
  Result<GuestFreeze> freeze = GuestFreeze::Freeze(agent, kFreezeDeadline);
  if (freeze.ok()) {
    hold.frozen = true;
    hold.frozen_mounts = freeze->mounts();
  } else if (freeze.status().code() == ErrorCode::kUnsupported) {
    hold.paused_because = freeze.status().message();
    FE_RETURN_IF_ERROR(vm.Pause().Annotate(what));
  } else {
    return freeze.status().Annotate(what);
  }
  Status status = steps.while_held ? steps.while_held().Annotate(what) : Status::Ok();
  bool started = false;
  if (status.ok()) {
    Result<hypervisor::BackgroundCapture> capture = vm.StartBackgroundSnapshot(snapshot_dir);
    status = capture.status().Annotate(what);
    started = status.ok();
    if (started) hold.vm_stopped = capture->vm_stopped;
  }
  if (hold.frozen) {
    Status thawed = freeze->Thaw();
    if (status.ok() && !thawed.ok()) status = thawed.Annotate(what);
  } else {
    // The snapshot started the VM again itself; `cont` covers a failed start and a hypervisor that
    // keeps a paused VM paused.
    Status resumed = vm.Resume();
    if (!resumed.ok()) {
      resumed = resumed.Annotate(what + ": resuming the VM (it stays paused)");
      return status.ok() ? resumed : Status(status.code(), status.message() + "; " + resumed.message());
    }
  }
  if (steps.released) steps.released(hold);
  if (!started) return status;
  Result<std::vector<std::string>> files = vm.FinishBackgroundSnapshot();
  if (!status.ok()) return status;  // a thaw that came too late: the snapshot is not to be used
  if (!files.ok()) return files.status().Annotate(what);
  return files;
}

Status StopVm(const VmContext& context, const ProcessRecord& record) {
  const std::string what = "stopping " + context.guest_dir + " (pid " + std::to_string(record.pid) + ")";
  FE_RETURN_IF_ERROR(CheckContext(context).Annotate(what));
  Result<VmProcess> process = VmProcess::Attach(record.pid, record.start_time);
  if (!process.ok()) {
    if (process.status().code() == ErrorCode::kNotFound) return Status::Ok();  // already gone
    return process.status().Annotate(what);
  }
  const Clock::time_point deadline = Clock::now() + context.timeout;
  // An API that does not answer is no reason to keep the process: it is killed at the deadline.
  Result<std::unique_ptr<VmController>> controller = context.plugin->Connect(record.api_socket, context.timeout);
  if (controller.ok()) (void)(*controller)->Shutdown();
  return EndProcess(*process, deadline).Annotate(what);
}

Result<std::optional<UniqueFd>> ConnectGuestAgent(const hypervisor::IdentityChannel& channel,
                                                  Clock::time_point deadline, const std::string& who,
                                                  std::string& peer) {
  peer = "guest agent of " + who;
  switch (channel.kind) {
    case hypervisor::IdentityChannel::Kind::kNone:
      return Status::InvalidArgument(who + ": no identity channel to reach its guest agent");
    case hypervisor::IdentityChannel::Kind::kVirtioSerialSocket: {
      peer += " on virtio-serial socket " + channel.path;
      Result<UniqueFd> connected = ConnectUnixSocket(channel.path, deadline);
      if (!connected.ok()) return connected.status().Annotate("connecting to the " + peer);
      return std::optional<UniqueFd>(std::move(*connected));
    }
    case hypervisor::IdentityChannel::Kind::kHybridVsock: {
      peer += " on vsock port " + std::to_string(channel.port) + " via " + channel.path;
      Result<UniqueFd> connected = hypervisor::ConnectHybridVsock(channel.path, channel.port, Left(deadline));
      if (!connected.ok()) return std::optional<UniqueFd>();
      return std::optional<UniqueFd>(std::move(*connected));
    }
  }
  return Status::Internal(who + ": unknown identity channel kind");
}

Result<HandoffOutcome> HandOffGuestIdentity(const hypervisor::IdentityChannel& channel,
                                            const hypervisor::IdentityHandoff& handoff, milliseconds timeout,
                                            const std::string& who) {
  const Clock::time_point deadline = Clock::now() + timeout;
  std::string peer;
  Result<std::optional<UniqueFd>> stream = ConnectGuestAgent(channel, deadline, who, peer);
  if (!stream.ok()) return stream.status().Annotate("identity handoff");
  if (!stream->has_value()) return HandoffOutcome::kNoAgent;
  FE_RETURN_IF_ERROR(hypervisor::HandOffIdentity((*stream)->get(), handoff, Left(deadline), peer));
  return HandoffOutcome::kApplied;
}

Result<HandoffOutcome> SetGuestClockThrough(const hypervisor::IdentityChannel& channel, milliseconds timeout,
                                            const std::string& who) {
  const Clock::time_point deadline = Clock::now() + timeout;
  std::string peer;
  Result<std::optional<UniqueFd>> stream = ConnectGuestAgent(channel, deadline, who, peer);
  if (!stream.ok()) return stream.status().Annotate("setting the guest clock");
  if (!stream->has_value()) return HandoffOutcome::kNoAgent;
  FE_RETURN_IF_ERROR(hypervisor::SetGuestClock((*stream)->get(), Left(deadline), peer));
  return HandoffOutcome::kApplied;
}

bool VmProcessAlive(const ProcessRecord& process) { return VmProcess::Attach(process.pid, process.start_time).ok(); }

}  // namespace fe::engine::vm
