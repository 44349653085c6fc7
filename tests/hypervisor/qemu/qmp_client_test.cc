// QmpClient against a real QEMU (-machine none under TCG: QMP, run states, events, quit).
#include "hypervisor/qemu/qmp_client.h"

#include <optional>

#include <gtest/gtest.h>

#include "hypervisor/qemu/qemu_argv.h"
#include "tests/hypervisor/qemu/qemu_process.h"
#include "tests/support/temp_dir.h"

namespace fe::hypervisor::qemu {
namespace {

// Declares `QmpClient& name`, connected to the test's QEMU, or fails the test.
#define FE_CONNECT(name)                                                                      \
  Result<QmpClient> name##_connected = Connect();                                             \
  ASSERT_TRUE(name##_connected.ok()) << name##_connected.status().ToString() << qemu_->Log(); \
  QmpClient& name = *name##_connected

using namespace std::chrono_literals;
using nlohmann::json;

class QmpClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (std::string why = test::QemuUnavailableReason(); !why.empty()) GTEST_SKIP() << why;
    Result<fe::test::TempDir> dir = fe::test::TempDir::Create();
    ASSERT_TRUE(dir.ok()) << dir.status().ToString();
    dir_.emplace(std::move(*dir));
    config_ = test::MachineNoneConfig(dir_->path());
    Result<test::ChildProcess> qemu = test::ChildProcess::Start(BuildArgv(config_), dir_->Sub("qemu.log"));
    ASSERT_TRUE(qemu.ok()) << qemu.status().ToString();
    qemu_.emplace(std::move(*qemu));
  }

  Result<QmpClient> Connect() { return QmpClient::Connect(config_.qmp_socket, 10s); }

  std::optional<fe::test::TempDir> dir_;
  Config config_;
  std::optional<test::ChildProcess> qemu_;
};

TEST_F(QmpClientTest, ConnectsWhileQemuIsStillStartingAndReadsTheGreeting) {
  FE_CONNECT(client);  // started just now: the socket may not exist yet
  EXPECT_GE(client.version()["qemu"]["major"].get<int>(), 7) << client.version().dump();
  EXPECT_EQ(client.socket_path(), config_.qmp_socket);
}

TEST_F(QmpClientTest, ExecuteReturnsTheReturnValue) {
  FE_CONNECT(client);
  Result<json> status = client.Execute("query-status");
  ASSERT_TRUE(status.ok()) << status.status().ToString();
  EXPECT_EQ((*status)["status"], "running");
  EXPECT_EQ((*status)["running"], true);
}

TEST_F(QmpClientTest, UnknownCommandIsUnsupported) {
  FE_CONNECT(client);
  Result<json> reply = client.Execute("no-such-command");
  ASSERT_FALSE(reply.ok());
  EXPECT_EQ(reply.status().code(), ErrorCode::kUnsupported);
  EXPECT_NE(reply.status().message().find("CommandNotFound"), std::string::npos) << reply.status().message();
  EXPECT_TRUE(client.Execute("query-status").ok());  // the connection is still usable
}

TEST_F(QmpClientTest, CommandErrorCarriesQemusDescription) {
  FE_CONNECT(client);
  Result<json> reply = client.Execute("migrate-incoming", json{{"uri", "exec:true"}});
  ASSERT_FALSE(reply.ok());
  EXPECT_EQ(reply.status().code(), ErrorCode::kIo);
  EXPECT_NE(reply.status().message().find("'migrate-incoming' failed: GenericError"), std::string::npos)
      << reply.status().message();
  EXPECT_NE(reply.status().message().find(config_.qmp_socket), std::string::npos);
}

TEST_F(QmpClientTest, StopAndContRaiseEvents) {
  FE_CONNECT(client);
  ASSERT_TRUE(client.Execute("stop").ok());
  Result<json> stop = client.WaitForEvent("STOP", 5s);
  ASSERT_TRUE(stop.ok()) << stop.status().ToString();
  EXPECT_TRUE(stop->contains("timestamp"));
  EXPECT_EQ((*client.Execute("query-status"))["status"], "paused");
  ASSERT_TRUE(client.Execute("cont").ok());
  EXPECT_TRUE(client.WaitForEvent("RESUME", 5s).ok());
  EXPECT_EQ((*client.Execute("query-status"))["status"], "running");
}

TEST_F(QmpClientTest, WaitForEventTimesOut) {
  FE_CONNECT(client);
  Result<json> event = client.WaitForEvent("NEVER", 50ms);
  ASSERT_FALSE(event.ok());
  EXPECT_NE(event.status().message().find("timed out waiting for event NEVER"), std::string::npos)
      << event.status().message();
}

TEST_F(QmpClientTest, QuitClosesTheConnectionAndEndsQemu) {
  FE_CONNECT(client);
  ASSERT_TRUE(client.Execute("quit").ok());
  ASSERT_TRUE(client.WaitForClose(5s).ok());
  Result<json> after = client.Execute("query-status");
  ASSERT_FALSE(after.ok());
  EXPECT_NE(after.status().message().find("closed"), std::string::npos) << after.status().message();
  EXPECT_EQ(qemu_->Wait(5s), 0) << qemu_->Log();
}

TEST_F(QmpClientTest, NextClientConnectsOnceTheFirstHasClosed) {
  {
    FE_CONNECT(first);
    ASSERT_TRUE(first.Execute("stop").ok());
  }
  FE_CONNECT(second);
  EXPECT_EQ((*second.Execute("query-status"))["status"], "paused");
}

TEST(QmpClientConnectTest, NoSocketFailsAtTheTimeoutNamingIt) {
  Result<QmpClient> client = QmpClient::Connect("/nonexistent/forkengine/qmp.sock", 50ms);
  ASSERT_FALSE(client.ok());
  EXPECT_NE(client.status().message().find("/nonexistent/forkengine/qmp.sock"), std::string::npos);
}

}  // namespace
}  // namespace fe::hypervisor::qemu
