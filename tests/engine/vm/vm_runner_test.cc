// The VM process runner against real QEMUs under TCG: a bare machine (SeaBIOS with no disk, 64 MiB)
// booted, stopped, snapshotted (also in the background, around a guest agent's freeze) and restored; hypervisors that
// exit at once or never answer; and process identity (a reused pid, a zombie) with plain child processes.
#include "engine/vm/vm_runner.h"

#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "engine/vm/process_stat.h"
#include "hypervisor/forkagent/agent.h"
#include "hypervisor/forkagent/channel.h"
#include "hypervisor/qemu/qemu.h"
#include "hypervisor/qemu/qemu_config.h"
#include "hypervisor/qemu/qemu_controller.h"
#include "tests/hypervisor/qemu/qemu_process.h"
#include "tests/support/file_util.h"
#include "tests/support/temp_dir.h"

namespace fe::engine::vm {
namespace {

using namespace std::chrono_literals;
using hypervisor::LaunchCommand;
using hypervisor::LaunchMode;
using hypervisor::Plugin;
namespace forkagent = hypervisor::forkagent;

// True when this test process has no child left, running or zombie.
bool NoChildLeft() {
  errno = 0;
  return ::waitpid(-1, nullptr, WNOHANG) == -1 && errno == ECHILD;
}

bool ProcessGone(pid_t pid) { return ReadProcStat(pid).status().code() == ErrorCode::kNotFound; }

// A plugin whose hypervisor is a shell script: for starts that fail. Connect is QEMU's.
class ScriptPlugin final : public Plugin {
 public:
  ScriptPlugin(std::string script, std::string api_socket)
      : script_(std::move(script)), api_socket_(std::move(api_socket)) {}
  std::string_view Kind() const override { return "script"; }
  hypervisor::PluginCapabilities Capabilities() const override { return {}; }
  Status CheckGuestDirectory(const std::string&, bool) const override { return Status::Ok(); }
  Result<hypervisor::PreparedFork> PrepareFork(const hypervisor::ForkSpec&) const override {
    return Status::Unsupported("script plugin: no forks");
  }
  Result<LaunchCommand> Launch(const std::string&, LaunchMode, const hypervisor::MemorySource&) const override {
    return LaunchCommand{{"/bin/sh", "-c", script_}, api_socket_, ""};
  }
  Result<std::unique_ptr<hypervisor::VmController>> Connect(const std::string& api_socket,
                                                            std::chrono::milliseconds timeout) const override {
    return hypervisor::qemu::QemuPlugin().Connect(api_socket, timeout);
  }

 private:
  std::string script_;
  std::string api_socket_;
};

// A child process of the test itself (not through the runner), killed and reaped at the end.
class OwnChild {
 public:
  explicit OwnChild(const char* program, const char* argument) {
    pid_ = ::fork();
    if (pid_ == 0) {
      ::execlp(program, program, argument, static_cast<char*>(nullptr));
      ::_exit(127);
    }
  }
  ~OwnChild() {
    // Only a child not yet reaped (by the runner, say) is killed: its pid cannot have been reused.
    if (pid_ <= 0 || ::waitpid(pid_, nullptr, WNOHANG) != 0) return;
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
  }
  pid_t pid() const { return pid_; }

 private:
  pid_t pid_ = -1;
};

class VmRunnerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (std::string why = hypervisor::qemu::test::QemuUnavailableReason(); !why.empty()) GTEST_SKIP() << why;
    Result<fe::test::TempDir> dir = fe::test::TempDir::Create();
    ASSERT_TRUE(dir.ok()) << dir.status().ToString();
    dir_.emplace(std::move(*dir));
    guest_ = dir_->Sub("guest");
    runtime_ = dir_->Sub("runtime");
    ASSERT_EQ(::mkdir(guest_.c_str(), 0755), 0);
    ASSERT_EQ(::mkdir(runtime_.c_str(), 0755), 0);
    hypervisor::qemu::Config config;
    config.machine = "pc";
    config.accel = "tcg";
    config.cpus = 1;
    config.memory_mib = 64;
    config.qmp_socket = guest_ + "/qmp.sock";
    Status written = hypervisor::qemu::WriteConfig(guest_, config);
    ASSERT_TRUE(written.ok()) << written.ToString();
  }

  // Whatever a failed test left running is stopped.
  void TearDown() override {
    for (const ProcessRecord& record : started_) (void)StopVm(Context(), record);
  }

  VmContext Context(const Plugin* plugin = &hypervisor::qemu::QemuPlugin()) const {
    VmContext context;
    context.plugin = plugin;
    context.guest_dir = guest_;
    context.runtime_dir = runtime_;
    context.timeout = 10s;
    return context;
  }

  Result<ProcessRecord> Track(Result<ProcessRecord> record) {
    if (record.ok()) started_.push_back(*record);
    return record;
  }

  // QEMU's run state, through a QMP connection closed again before returning.
  static std::string RunState(const ProcessRecord& record) {
    Result<std::unique_ptr<hypervisor::VmController>> controller =
        hypervisor::qemu::ConnectController(record.api_socket, 5s);
    if (!controller.ok()) return controller.status().ToString();
    Result<std::string> state = static_cast<hypervisor::qemu::QemuController&>(**controller).RunState();
    return state.ok() ? *state : state.status().ToString();
  }

  std::string Log() const {
    Result<std::string> log = fe::test::ReadFile(runtime_ + "/hypervisor.log");
    return log.ok() ? *log : log.status().ToString();
  }

  std::optional<fe::test::TempDir> dir_;
  std::string guest_;
  std::string runtime_;
  std::vector<ProcessRecord> started_;
};

TEST_F(VmRunnerTest, BootVmStartsALiveVmInItsOwnSessionLoggingToTheRuntimeDir) {
  Result<ProcessRecord> record = Track(BootVm(Context()));
  ASSERT_TRUE(record.ok()) << record.status().ToString();
  EXPECT_TRUE(VmProcessAlive(*record));
  EXPECT_EQ(record->api_socket, guest_ + "/qmp.sock");
  EXPECT_EQ(::getsid(record->pid), record->pid);
  Result<ProcStat> stat = ReadProcStat(record->pid);
  ASSERT_TRUE(stat.ok()) << stat.status().ToString();
  EXPECT_EQ(stat->start_time, record->start_time);
  EXPECT_EQ(RunState(*record), "running");
  EXPECT_NE(Log().find("forkengine: exec qemu-system-x86_64"), std::string::npos) << Log();
}

TEST_F(VmRunnerTest, StopVmEndsTheProcessAndLeavesNoZombie) {
  Result<ProcessRecord> record = Track(BootVm(Context()));
  ASSERT_TRUE(record.ok()) << record.status().ToString();
  Status stopped = StopVm(Context(), *record);
  ASSERT_TRUE(stopped.ok()) << stopped.ToString();
  EXPECT_FALSE(VmProcessAlive(*record));
  EXPECT_TRUE(ProcessGone(record->pid));
  EXPECT_TRUE(NoChildLeft());
  Status again = StopVm(Context(), *record);
  EXPECT_TRUE(again.ok()) << again.ToString();
}

TEST_F(VmRunnerTest, SnapshotAndStopVmWritesTheSnapshotAndRestoreVmRunsIt) {
  Result<ProcessRecord> booted = Track(BootVm(Context()));
  ASSERT_TRUE(booted.ok()) << booted.status().ToString();
  const std::string snapshot_dir = guest_ + "/snapshot";
  Status saved = SnapshotAndStopVm(Context(), *booted, snapshot_dir);
  ASSERT_TRUE(saved.ok()) << saved.ToString();
  struct stat info {};
  EXPECT_EQ(::stat((snapshot_dir + "/" + hypervisor::qemu::kStateFile).c_str(), &info), 0);
  EXPECT_GT(info.st_size, 0);
  EXPECT_EQ(::stat((snapshot_dir + "/" + hypervisor::qemu::kSnapshotInfoFile).c_str(), &info), 0);
  EXPECT_FALSE(VmProcessAlive(*booted));
  EXPECT_TRUE(ProcessGone(booted->pid));

  Result<ProcessRecord> restored = Track(RestoreVm(Context(), snapshot_dir));
  ASSERT_TRUE(restored.ok()) << restored.status().ToString();
  EXPECT_TRUE(VmProcessAlive(*restored));
  EXPECT_EQ(RunState(*restored), "running");
  Status stopped = StopVm(Context(), *restored);
  ASSERT_TRUE(stopped.ok()) << stopped.ToString();
  EXPECT_TRUE(NoChildLeft());
}

TEST_F(VmRunnerTest, FailedSnapshotResumesTheVmAndKeepsItRunning) {
  Result<ProcessRecord> record = Track(BootVm(Context()));
  ASSERT_TRUE(record.ok()) << record.status().ToString();
  // A directory under a regular file cannot be made.
  const std::string blocked = guest_ + "/qemu-config.json/snapshot";
  Status saved = SnapshotAndStopVm(Context(), *record, blocked);
  ASSERT_FALSE(saved.ok());
  EXPECT_NE(saved.message().find(blocked), std::string::npos) << saved.ToString();
  EXPECT_TRUE(VmProcessAlive(*record));
  EXPECT_EQ(RunState(*record), "running");
}

TEST_F(VmRunnerTest, RestoreWithoutSnapshotFailsAndLeavesNoProcess) {
  const std::string empty = dir_->Sub("no-snapshot");
  ASSERT_EQ(::mkdir(empty.c_str(), 0755), 0);
  Result<ProcessRecord> restored = Track(RestoreVm(Context(), empty));
  ASSERT_FALSE(restored.ok());
  EXPECT_NE(restored.status().message().find(empty), std::string::npos) << restored.status().ToString();
  EXPECT_TRUE(NoChildLeft());
}

TEST_F(VmRunnerTest, BootRefusesAnApiSocketAnotherVmServes) {
  Result<ProcessRecord> first = Track(BootVm(Context()));
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  Result<ProcessRecord> second = Track(BootVm(Context()));
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), ErrorCode::kFailedPrecondition) << second.status().ToString();
  EXPECT_TRUE(VmProcessAlive(*first));
  EXPECT_EQ(RunState(*first), "running");
}

TEST_F(VmRunnerTest, BootReplacesAStaleApiSocketOfAKilledVm) {
  Result<ProcessRecord> first = Track(BootVm(Context()));
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  ASSERT_EQ(::kill(first->pid, SIGKILL), 0);
  ASSERT_EQ(::waitpid(first->pid, nullptr, 0), first->pid);
  Result<ProcessRecord> second = Track(BootVm(Context()));
  ASSERT_TRUE(second.ok()) << second.status().ToString();
  EXPECT_EQ(RunState(*second), "running");
}

TEST_F(VmRunnerTest, HypervisorThatExitsAtOnceFailsWithItsLogAndExitStatus) {
  const std::string pid_file = dir_->Sub("pid");
  ScriptPlugin plugin("echo $$ > " + pid_file + "; echo boom-from-hypervisor >&2; exit 3", guest_ + "/api.sock");
  Result<ProcessRecord> record = Track(BootVm(Context(&plugin)));
  ASSERT_FALSE(record.ok());
  const std::string message = record.status().message();
  EXPECT_NE(message.find("boom-from-hypervisor"), std::string::npos) << message;
  EXPECT_NE(message.find("exited with status 3"), std::string::npos) << message;
  EXPECT_NE(message.find(runtime_ + "/hypervisor.log"), std::string::npos) << message;
  Result<std::string> pid = fe::test::ReadFile(pid_file);
  ASSERT_TRUE(pid.ok()) << pid.status().ToString();
  EXPECT_TRUE(ProcessGone(std::stoi(*pid)));
  EXPECT_TRUE(NoChildLeft());
}

TEST_F(VmRunnerTest, HypervisorThatNeverAnswersIsKilledAtTheTimeout) {
  const std::string pid_file = dir_->Sub("pid");
  ScriptPlugin plugin("echo $$ > " + pid_file + "; exec sleep 100", guest_ + "/api.sock");
  VmContext context = Context(&plugin);
  context.timeout = 300ms;
  Result<ProcessRecord> record = Track(BootVm(context));
  ASSERT_FALSE(record.ok());
  EXPECT_NE(record.status().message().find("did not open its API socket " + guest_ + "/api.sock"), std::string::npos)
      << record.status().ToString();
  Result<std::string> pid = fe::test::ReadFile(pid_file);
  ASSERT_TRUE(pid.ok()) << pid.status().ToString();
  EXPECT_TRUE(ProcessGone(std::stoi(*pid)));
  EXPECT_TRUE(NoChildLeft());
}

// A plugin whose launch command is given: for hypervisors this host cannot run.
class FixedCommandPlugin final : public Plugin {
 public:
  explicit FixedCommandPlugin(LaunchCommand command) : command_(std::move(command)) {}
  std::string_view Kind() const override { return "fixed"; }
  hypervisor::PluginCapabilities Capabilities() const override { return {}; }
  Status CheckGuestDirectory(const std::string&, bool) const override { return Status::Ok(); }
  Result<hypervisor::PreparedFork> PrepareFork(const hypervisor::ForkSpec&) const override {
    return Status::Unsupported("no forks");
  }
  Result<LaunchCommand> Launch(const std::string&, LaunchMode, const hypervisor::MemorySource&) const override {
    return command_;
  }
  Result<std::unique_ptr<hypervisor::VmController>> Connect(const std::string&,
                                                            std::chrono::milliseconds) const override {
    return Status::Io("never reached");
  }

 private:
  LaunchCommand command_;
};

TEST_F(VmRunnerTest, MissingHypervisorBinaryIsUnsupportedNamingItAndHowToInstallIt) {
  FixedCommandPlugin plugin(LaunchCommand{{"/nonexistent/hypervisor"}, guest_ + "/api.sock", "apt install it"});
  Result<ProcessRecord> record = Track(BootVm(Context(&plugin)));
  ASSERT_FALSE(record.ok());
  EXPECT_EQ(record.status().code(), ErrorCode::kUnsupported) << record.status().ToString();
  EXPECT_NE(record.status().message().find("'/nonexistent/hypervisor'"), std::string::npos);
  EXPECT_NE(record.status().message().find("apt install it"), std::string::npos);
  EXPECT_TRUE(NoChildLeft());
}

TEST_F(VmRunnerTest, AWrapperThatCannotExecuteTheHypervisorIsUnsupportedToo) {
  // What unshare does when the hypervisor after "--" is missing: exit status 127.
  FixedCommandPlugin plugin(
      LaunchCommand{{"sh", "-c", "exec /nonexistent/hypervisor"}, guest_ + "/api.sock", "apt install it"});
  Result<ProcessRecord> record = Track(BootVm(Context(&plugin)));
  ASSERT_FALSE(record.ok());
  EXPECT_EQ(record.status().code(), ErrorCode::kUnsupported) << record.status().ToString();
  EXPECT_NE(record.status().message().find("exited with status 127"), std::string::npos);
  EXPECT_NE(record.status().message().find("apt install it"), std::string::npos);
  EXPECT_TRUE(NoChildLeft());
}

TEST_F(VmRunnerTest, ProcessWithAnotherStartTimeIsNotAliveAndIsNeverKilled) {
  OwnChild sleeper("sleep", "100");
  ASSERT_GT(sleeper.pid(), 0);
  Result<ProcStat> stat = ReadProcStat(sleeper.pid());
  ASSERT_TRUE(stat.ok()) << stat.status().ToString();
  const ProcessRecord real{sleeper.pid(), stat->start_time, guest_ + "/absent.sock"};
  const ProcessRecord reused{sleeper.pid(), stat->start_time + 1, guest_ + "/absent.sock"};
  EXPECT_TRUE(VmProcessAlive(real));
  EXPECT_FALSE(VmProcessAlive(reused));

  Status stopped = StopVm(Context(), reused);
  EXPECT_TRUE(stopped.ok()) << stopped.ToString();
  EXPECT_EQ(::kill(sleeper.pid(), 0), 0);
  EXPECT_EQ(::waitpid(sleeper.pid(), nullptr, WNOHANG), 0) << "the process was ended";
  EXPECT_TRUE(VmProcessAlive(real));
}

TEST_F(VmRunnerTest, StopVmKillsAProcessWhoseApiNeverAnswers) {
  OwnChild sleeper("sleep", "100");
  ASSERT_GT(sleeper.pid(), 0);
  Result<ProcStat> stat = ReadProcStat(sleeper.pid());
  ASSERT_TRUE(stat.ok()) << stat.status().ToString();
  const ProcessRecord record{sleeper.pid(), stat->start_time, guest_ + "/absent.sock"};
  VmContext context = Context();
  context.timeout = 200ms;
  Status stopped = StopVm(context, record);
  ASSERT_TRUE(stopped.ok()) << stopped.ToString();
  EXPECT_FALSE(VmProcessAlive(record));
  EXPECT_TRUE(ProcessGone(sleeper.pid()));
}

TEST_F(VmRunnerTest, ZombieIsNotAliveAndIsReaped) {
  OwnChild quitter("true", nullptr);
  ASSERT_GT(quitter.pid(), 0);
  Result<ProcStat> stat = ReadProcStat(quitter.pid());
  ASSERT_TRUE(stat.ok()) << stat.status().ToString();
  while (stat.ok() && stat->state != 'Z') {
    std::this_thread::sleep_for(5ms);
    stat = ReadProcStat(quitter.pid());
  }
  ASSERT_TRUE(stat.ok()) << stat.status().ToString();
  EXPECT_FALSE(VmProcessAlive(ProcessRecord{quitter.pid(), stat->start_time, ""}));
  EXPECT_TRUE(ProcessGone(quitter.pid()));
}

// What happened, in order, across the test's threads.
class EventLog {
 public:
  void Add(std::string event) {
    std::lock_guard lock(mutex_);
    events_.push_back(std::move(event));
  }
  std::vector<std::string> events() {
    std::lock_guard lock(mutex_);
    return events_;
  }

 private:
  std::mutex mutex_;
  std::vector<std::string> events_;
};

class LoggingFreezer : public forkagent::FilesystemFreezer {
 public:
  explicit LoggingFreezer(EventLog& log) : log_(log) {}
  Result<std::vector<std::string>> Freeze(std::chrono::milliseconds) override {
    log_.Add("freeze");
    if (!refuse_with.empty()) return Status::FailedPrecondition(refuse_with);
    frozen_ = true;
    return std::vector<std::string>{"/data"};
  }
  Result<forkagent::ThawOutcome> Thaw() override {
    log_.Add("thaw");
    forkagent::ThawOutcome outcome;
    outcome.held = frozen_ && !deadline_passed;
    frozen_ = false;
    return outcome;
  }
  std::string refuse_with;  // non-empty: Freeze fails with it
  std::atomic<bool> deadline_passed = false;

 private:
  EventLog& log_;
  bool frozen_ = false;
};

class NoopApplier : public forkagent::IdentityApplier {
 public:
  Status ApplyNetwork(const forkagent::GuestIdentity&, const forkagent::MacAddress*) override { return Status::Ok(); }
  Status StepClock(int64_t) override { return Status::Ok(); }
};

// The agent's request handling served on a Unix socket, one connection at a time, as QEMU's
// virtio-serial socket chardev hands one client to the guest's port.
class AgentOnUnixSocket {
 public:
  AgentOnUnixSocket(const std::string& path, forkagent::FilesystemFreezer& freezer)
      : path_(path), agent_(applier_, &freezer) {
    listener_ = UniqueFd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::memcpy(address.sun_path, path.c_str(), path.size() + 1);
    if (::bind(listener_.get(), reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0 ||
        ::listen(listener_.get(), 4) != 0) {
      listener_ = UniqueFd();
      return;
    }
    thread_ = std::thread([this] { Serve(); });
  }
  ~AgentOnUnixSocket() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  bool ok() const { return static_cast<bool>(listener_); }

 private:
  void Serve() {
    while (!stop_) {
      pollfd entry{listener_.get(), POLLIN, 0};
      if (::poll(&entry, 1, 20) <= 0) continue;
      UniqueFd connection(::accept4(listener_.get(), nullptr, nullptr, SOCK_CLOEXEC));
      if (!connection) continue;
      forkagent::LineBuffer lines(forkagent::kMaxLineBytes);
      char buffer[4096];
      while (!stop_) {
        pollfd readable{connection.get(), POLLIN, 0};
        if (::poll(&readable, 1, 20) <= 0) continue;
        ssize_t got = ::read(connection.get(), buffer, sizeof(buffer));
        if (got <= 0) break;
        lines.Append(std::string_view(buffer, static_cast<size_t>(got)));
        while (std::optional<std::string> line = lines.Next()) {
          const std::string reply = agent_.Handle(*line).reply;
          if (::write(connection.get(), reply.data(), reply.size()) != static_cast<ssize_t>(reply.size())) break;
        }
      }
    }
  }

  std::string path_;
  NoopApplier applier_;
  forkagent::Agent agent_;
  UniqueFd listener_;
  std::atomic<bool> stop_ = false;
  std::thread thread_;
};

// SnapshotRunningVmInBackground with a guest agent on the host end of its channel: the real forkagent
// request handling (Agent) on a Unix socket of the test's own, with a freezer that records what it is
// asked. Proves the order the disks need (freeze, clones, capture, thaw), the pause where the guest
// cannot be frozen, and that a freeze which ended at its deadline before the capture fails the snapshot.
class BackgroundSnapshotTest : public VmRunnerTest {
 protected:
  void SetUp() override {
    VmRunnerTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    Result<ProcessRecord> booted = Track(BootVm(Context()));
    ASSERT_TRUE(booted.ok()) << booted.status().ToString();
    record_ = *booted;
    agent_.channel = {hypervisor::IdentityChannel::Kind::kVirtioSerialSocket, dir_->Sub("agent.sock"), 0};
    agent_.timeout = 5s;
    agent_.who = "the test VM";
  }

  Result<std::vector<std::string>> Snapshot(const AgentAccess& agent, const std::string& name,
                                            const BackgroundSnapshotSteps& steps) {
    return SnapshotRunningVmInBackground(Context(), record_, agent, guest_ + "/" + name, steps);
  }

  // Steps that log the clones and keep what the hold was.
  BackgroundSnapshotSteps LoggingSteps(EventLog& log) {
    BackgroundSnapshotSteps steps;
    steps.while_held = [&log] {
      log.Add("clones");
      return Status::Ok();
    };
    steps.released = [this, &log](const SourceHold& hold) {
      log.Add("released");
      hold_ = hold;
    };
    return steps;
  }

  ProcessRecord record_;
  AgentAccess agent_;
  SourceHold hold_;
};

TEST_F(BackgroundSnapshotTest, AFrozenGuestRunsThroughItsClonesAndIsStoppedOnlyForTheCapture) {
  EventLog log;
  LoggingFreezer freezer(log);
  AgentOnUnixSocket agent(agent_.channel.path, freezer);
  ASSERT_TRUE(agent.ok());
  Result<std::vector<std::string>> files = Snapshot(agent_, "snapshot", LoggingSteps(log));
  ASSERT_TRUE(files.ok()) << files.status().ToString();
  EXPECT_FALSE(files->empty());
  EXPECT_EQ(log.events(), (std::vector<std::string>{"freeze", "clones", "thaw", "released"}))
      << "the disks are cloned while frozen, and thawed only after the capture";
  EXPECT_TRUE(hold_.frozen);
  EXPECT_EQ(hold_.frozen_mounts, std::vector<std::string>{"/data"});
  EXPECT_TRUE(hold_.paused_because.empty()) << hold_.paused_because;
  // QEMU reports a STOP only for a VM that was running when its capture began: forkd never paused it.
  ASSERT_TRUE(hold_.vm_stopped.has_value());
  EXPECT_LT(*hold_.vm_stopped, 10s);
  EXPECT_EQ(RunState(record_), "running");
}

TEST_F(BackgroundSnapshotTest, AGuestThatCannotBeFrozenIsPausedForItsClonesInstead) {
  EventLog log;
  LoggingFreezer freezer(log);
  freezer.refuse_with = "swap on /dev/vdc writes to a disk past any filesystem freeze";
  AgentOnUnixSocket agent(agent_.channel.path, freezer);
  ASSERT_TRUE(agent.ok());
  Result<std::vector<std::string>> files = Snapshot(agent_, "snapshot", LoggingSteps(log));
  ASSERT_TRUE(files.ok()) << files.status().ToString();
  EXPECT_FALSE(hold_.frozen);
  EXPECT_NE(hold_.paused_because.find("/dev/vdc"), std::string::npos) << hold_.paused_because;
  EXPECT_FALSE(hold_.vm_stopped.has_value()) << "the VM was paused already when QEMU captured it";
  EXPECT_EQ(RunState(record_), "running");

  // Without any agent channel at all, the same.
  AgentAccess none = agent_;
  none.channel = {};
  Result<std::vector<std::string>> again = Snapshot(none, "snapshot2", LoggingSteps(log));
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_FALSE(hold_.frozen);
  EXPECT_NE(hold_.paused_because.find("no guest agent channel"), std::string::npos) << hold_.paused_because;
}

TEST_F(BackgroundSnapshotTest, AFreezeThatEndedAtItsDeadlineBeforeTheThawFailsTheSnapshotAndTheVmRunsOn) {
  EventLog log;
  LoggingFreezer freezer(log);
  freezer.deadline_passed = true;
  AgentOnUnixSocket agent(agent_.channel.path, freezer);
  ASSERT_TRUE(agent.ok());
  Result<std::vector<std::string>> files = Snapshot(agent_, "snapshot", LoggingSteps(log));
  ASSERT_FALSE(files.ok());
  EXPECT_EQ(files.status().code(), ErrorCode::kFailedPrecondition) << files.status().ToString();
  EXPECT_NE(files.status().message().find("deadline"), std::string::npos) << files.status().ToString();
  EXPECT_EQ(RunState(record_), "running");
  // The snapshot is over (not left running in QEMU): a next one can start.
  freezer.deadline_passed = false;
  Result<std::vector<std::string>> next = Snapshot(agent_, "snapshot", LoggingSteps(log));
  EXPECT_TRUE(next.ok()) << next.status().ToString();
}

TEST_F(BackgroundSnapshotTest, AFailureWhileFrozenThawsTheGuestAndLeavesTheVmRunning) {
  EventLog log;
  LoggingFreezer freezer(log);
  AgentOnUnixSocket agent(agent_.channel.path, freezer);
  ASSERT_TRUE(agent.ok());
  BackgroundSnapshotSteps steps = LoggingSteps(log);
  steps.while_held = [&log] {
    log.Add("clones");
    return Status::Io("clone failed: injected");
  };
  Result<std::vector<std::string>> files = Snapshot(agent_, "snapshot", steps);
  ASSERT_FALSE(files.ok());
  EXPECT_NE(files.status().message().find("injected"), std::string::npos) << files.status().ToString();
  EXPECT_EQ(log.events(), (std::vector<std::string>{"freeze", "clones", "thaw", "released"}));
  EXPECT_EQ(RunState(record_), "running");
}

}  // namespace
}  // namespace fe::engine::vm
