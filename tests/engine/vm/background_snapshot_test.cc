// SnapshotRunningVmInBackground against a real QEMU under TCG (a bare machine, 64 MiB) and a guest
// agent on the host end of its channel: the real forkagent request handling (Agent) on a Unix socket
// of the test's own, with a freezer that records what it is asked. Proves the order the disks need
// (freeze, clones, capture, thaw), the pause where the guest cannot be frozen, and that a freeze which
// ended at its deadline before the capture fails the snapshot.
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "engine/vm/vm_runner.h"
#include "hypervisor/forkagent/agent.h"
#include "hypervisor/forkagent/channel.h"
#include "hypervisor/qemu/qemu.h"
#include "hypervisor/qemu/qemu_config.h"
#include "hypervisor/qemu/qemu_controller.h"
#include "tests/hypervisor/qemu/qemu_process.h"
#include "tests/support/temp_dir.h"

namespace fe::engine::vm {
namespace {

using namespace std::chrono_literals;
namespace forkagent = hypervisor::forkagent;

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

class BackgroundSnapshotTest : public ::testing::Test {
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
    context_.plugin = &hypervisor::qemu::QemuPlugin();
    context_.guest_dir = guest_;
    context_.runtime_dir = runtime_;
    context_.timeout = 10s;
    Result<ProcessRecord> booted = BootVm(context_);
    ASSERT_TRUE(booted.ok()) << booted.status().ToString();
    record_ = *booted;
    agent_.channel = {hypervisor::IdentityChannel::Kind::kVirtioSerialSocket, dir_->Sub("agent.sock"), 0};
    agent_.timeout = 5s;
    agent_.who = "the test VM";
  }

  void TearDown() override {
    if (record_) (void)StopVm(context_, *record_);
  }

  std::string RunState() const {
    Result<std::unique_ptr<hypervisor::VmController>> controller =
        hypervisor::qemu::ConnectController(record_->api_socket, 5s);
    if (!controller.ok()) return controller.status().ToString();
    Result<std::string> state = static_cast<hypervisor::qemu::QemuController&>(**controller).RunState();
    return state.ok() ? *state : state.status().ToString();
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

  std::optional<fe::test::TempDir> dir_;
  std::string guest_;
  std::string runtime_;
  VmContext context_;
  std::optional<ProcessRecord> record_;
  AgentAccess agent_;
  SourceHold hold_;
};

TEST_F(BackgroundSnapshotTest, AFrozenGuestRunsThroughItsClonesAndIsStoppedOnlyForTheCapture) {
  EventLog log;
  LoggingFreezer freezer(log);
  AgentOnUnixSocket agent(agent_.channel.path, freezer);
  ASSERT_TRUE(agent.ok());
  Result<std::vector<std::string>> files =
      SnapshotRunningVmInBackground(context_, *record_, agent_, guest_ + "/snapshot", LoggingSteps(log));
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
  EXPECT_EQ(RunState(), "running");
}

TEST_F(BackgroundSnapshotTest, AGuestThatCannotBeFrozenIsPausedForItsClonesInstead) {
  EventLog log;
  LoggingFreezer freezer(log);
  freezer.refuse_with = "swap on /dev/vdc writes to a disk past any filesystem freeze";
  AgentOnUnixSocket agent(agent_.channel.path, freezer);
  ASSERT_TRUE(agent.ok());
  Result<std::vector<std::string>> files =
      SnapshotRunningVmInBackground(context_, *record_, agent_, guest_ + "/snapshot", LoggingSteps(log));
  ASSERT_TRUE(files.ok()) << files.status().ToString();
  EXPECT_FALSE(hold_.frozen);
  EXPECT_NE(hold_.paused_because.find("/dev/vdc"), std::string::npos) << hold_.paused_because;
  EXPECT_FALSE(hold_.vm_stopped.has_value()) << "the VM was paused already when QEMU captured it";
  EXPECT_EQ(RunState(), "running");

  // Without any agent channel at all, the same.
  AgentAccess none = agent_;
  none.channel = {};
  Result<std::vector<std::string>> again =
      SnapshotRunningVmInBackground(context_, *record_, none, guest_ + "/snapshot2", LoggingSteps(log));
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
  Result<std::vector<std::string>> files =
      SnapshotRunningVmInBackground(context_, *record_, agent_, guest_ + "/snapshot", LoggingSteps(log));
  ASSERT_FALSE(files.ok());
  EXPECT_EQ(files.status().code(), ErrorCode::kFailedPrecondition) << files.status().ToString();
  EXPECT_NE(files.status().message().find("deadline"), std::string::npos) << files.status().ToString();
  EXPECT_EQ(RunState(), "running");
  // The snapshot is over (not left running in QEMU): a next one can start.
  freezer.deadline_passed = false;
  Result<std::vector<std::string>> next =
      SnapshotRunningVmInBackground(context_, *record_, agent_, guest_ + "/snapshot", LoggingSteps(log));
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
  Result<std::vector<std::string>> files =
      SnapshotRunningVmInBackground(context_, *record_, agent_, guest_ + "/snapshot", steps);
  ASSERT_FALSE(files.ok());
  EXPECT_NE(files.status().message().find("injected"), std::string::npos) << files.status().ToString();
  EXPECT_EQ(log.events(), (std::vector<std::string>{"freeze", "clones", "thaw", "released"}));
  EXPECT_EQ(RunState(), "running");
}

}  // namespace
}  // namespace fe::engine::vm
