#include "hypervisor/cloud_hypervisor/controller.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <map>
#include <mutex>
#include <thread>

#include <gtest/gtest.h>
#include <httplib.h>

#include "hypervisor/cloud_hypervisor/cloud_hypervisor.h"
#include "hypervisor/cloud_hypervisor/field_patterns.h"
#include "tests/support/fake_api_server.h"
#include "tests/support/scratch.h"
#include "tests/support/temp_dir.h"

namespace fe::hypervisor::cloud_hypervisor {
namespace {

using namespace std::chrono_literals;

using Request = fe::test::RecordedRequest;

// A test double of cloud-hypervisor's API server (tests/support/fake_api_server.h): answers 200 with a
// version to vmm.ping, 204 to anything else unless told otherwise.
class FakeCloudHypervisor : public fe::test::FakeApiServer {
 public:
  explicit FakeCloudHypervisor(std::string socket)
      : FakeApiServer(std::move(socket), [](const httplib::Request& request, httplib::Response& response) {
          if (request.path != "/api/v1/vmm.ping") return false;
          response.set_content(R"({"build_version":"v48.0","version":"48.0","pid":4242,"features":["kvm"]})",
                               "application/json");
          return true;
        }) {}

  // A canned answer to `path`, whatever the method.
  void Respond(const std::string& path, int status, const std::string& body) {
    FakeApiServer::Respond("GET " + path, status, body);
    FakeApiServer::Respond("PUT " + path, status, body);
  }
};

class CloudHypervisorControllerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Result<fe::test::TempDir> dir = fe::test::TempDir::Create();
    ASSERT_TRUE(dir.ok()) << dir.status().ToString();
    dir_.emplace(std::move(*dir));
    socket_ = dir_->Sub("api.sock");
  }

  std::optional<fe::test::TempDir> dir_;
  std::string socket_;
};

TEST_F(CloudHypervisorControllerTest, ConnectWaitsUntilTheApiAnswers) {
  FakeCloudHypervisor fake(socket_);
  std::thread late([&] {
    std::this_thread::sleep_for(150ms);
    fake.Start();
  });
  Result<std::unique_ptr<VmController>> controller = ConnectController(socket_, 5s);
  late.join();
  FE_ASSERT_OK(controller);
  std::vector<Request> requests = fake.requests();
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_EQ(requests[0].method, "GET");
  EXPECT_EQ(requests[0].path, "/api/v1/vmm.ping");
}

TEST_F(CloudHypervisorControllerTest, ConnectGivesUpAfterTheTimeout) {
  auto start = std::chrono::steady_clock::now();
  Result<std::unique_ptr<VmController>> controller = ConnectController(socket_, 200ms);
  auto waited = std::chrono::steady_clock::now() - start;
  ASSERT_FALSE(controller.ok());
  EXPECT_EQ(controller.status().code(), ErrorCode::kNotFound);
  EXPECT_NE(controller.status().message().find("did not answer within 200 ms"), std::string::npos)
      << controller.status().message();
  EXPECT_NE(controller.status().message().find(socket_), std::string::npos) << controller.status().message();
  EXPECT_GE(waited, 200ms);  // the whole timeout: it once gave up with up to 100 ms left
  EXPECT_LT(waited, 3s);
}

TEST_F(CloudHypervisorControllerTest, SendsTheApiRequestsForEachOperation) {
  FakeCloudHypervisor fake(socket_);
  fake.Start();
  Controller controller(socket_);
  std::string snapshot = dir_->Sub("snapshot");
  FE_ASSERT_OK(controller.Pause());
  FE_ASSERT_OK(controller.Snapshot(snapshot));
  FE_ASSERT_OK(controller.Resume());
  FE_ASSERT_OK(controller.Restore(snapshot, NetworkIdentity{}, {}));
  FE_ASSERT_OK(controller.Shutdown());

  std::vector<Request> requests = fake.requests();
  ASSERT_EQ(requests.size(), 5u);
  const std::vector<std::pair<std::string, Json>> expected = {
      {"/api/v1/vm.pause", nullptr},     {"/api/v1/vm.snapshot", Json{{"destination_url", "file://" + snapshot}}},
      {"/api/v1/vm.resume", nullptr},    {"/api/v1/vm.restore", Json{{"source_url", "file://" + snapshot}}},
      {"/api/v1/vmm.shutdown", nullptr},
  };
  for (size_t i = 0; i < expected.size(); ++i) {
    EXPECT_EQ(requests[i].method, "PUT") << i;
    EXPECT_EQ(requests[i].path, expected[i].first) << i;
    if (expected[i].second.is_null()) {
      EXPECT_EQ(requests[i].body, "") << i;
    } else {
      EXPECT_EQ(Json::parse(requests[i].body), expected[i].second) << requests[i].body;
      EXPECT_EQ(requests[i].content_type, "application/json");
    }
  }
  struct stat st {};
  EXPECT_EQ(::stat(snapshot.c_str(), &st), 0);  // Snapshot made the directory cloud-hypervisor writes into
  EXPECT_TRUE(S_ISDIR(st.st_mode));
}

TEST_F(CloudHypervisorControllerTest, HttpErrorsCarryTheStatusAndCloudHypervisorsMessage) {
  FakeCloudHypervisor fake(socket_);
  fake.Start();
  fake.Respond("/api/v1/vm.resume", 405, R"(["Error from API", "VM is not paused"])");
  fake.Respond("/api/v1/vm.pause", 404, "");
  fake.Respond("/api/v1/vm.restore", 500, R"(["Error restoring VM", "No such file or directory"])");
  fake.Respond("/api/v1/vm.snapshot", 400, "bad url");
  Controller controller(socket_);

  Status resume = controller.Resume();
  EXPECT_EQ(resume.code(), ErrorCode::kBusy);
  EXPECT_NE(resume.message().find("PUT /api/v1/vm.resume via " + socket_ + ": HTTP 405: "), std::string::npos)
      << resume.message();
  EXPECT_NE(resume.message().find("VM is not paused"), std::string::npos) << resume.message();
  EXPECT_EQ(controller.Pause().code(), ErrorCode::kNotFound);
  Status restore = controller.Restore(dir_->Sub("snapshot"), NetworkIdentity{}, {});
  EXPECT_EQ(restore.code(), ErrorCode::kIo);
  EXPECT_NE(restore.message().find("No such file or directory"), std::string::npos) << restore.message();
  EXPECT_EQ(controller.Snapshot(dir_->Sub("snapshot")).code(), ErrorCode::kInvalidArgument);
}

TEST_F(CloudHypervisorControllerTest, RefusesRelativeSnapshotDirectoriesWithoutSendingAnything) {
  FakeCloudHypervisor fake(socket_);
  fake.Start();
  Controller controller(socket_);
  EXPECT_EQ(controller.Snapshot("snapshot").code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(controller.Restore("", NetworkIdentity{}, {}).code(), ErrorCode::kInvalidArgument);
  EXPECT_TRUE(fake.requests().empty());
}

TEST_F(CloudHypervisorControllerTest, ARequestWithNoServerNamesTheSocket) {
  Controller controller(socket_, 1s);
  Status status = controller.Pause();
  EXPECT_EQ(status.code(), ErrorCode::kNotFound);
  EXPECT_NE(status.message().find("PUT /api/v1/vm.pause: connect to " + socket_), std::string::npos)
      << status.message();
}

TEST_F(CloudHypervisorControllerTest, PluginConnectDrivesTheSameApi) {
  FakeCloudHypervisor fake(socket_);
  fake.Start();
  Result<std::unique_ptr<VmController>> controller = CloudHypervisorPlugin().Connect(socket_, 2s);
  FE_ASSERT_OK(controller);
  FE_ASSERT_OK((*controller)->Pause());
  std::vector<Request> requests = fake.requests();
  ASSERT_EQ(requests.size(), 2u);
  EXPECT_EQ(requests[1].path, "/api/v1/vm.pause");
}

}  // namespace
}  // namespace fe::hypervisor::cloud_hypervisor
