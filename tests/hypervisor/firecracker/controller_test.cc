// The firecracker controller against a test-double API server on a Unix socket: the requests it
// sends, the alias held exactly during a fork's snapshot load (and removed on every path), version
// gates, shutdown through the process, and one restore end to end in a real mount namespace of its own.
#include "hypervisor/firecracker/controller.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <optional>
#include <thread>

#include "hypervisor/firecracker/api_client.h"
#include "hypervisor/firecracker/instance_files.h"
#include "tests/hypervisor/firecracker/fake_firecracker.h"
#include "tests/hypervisor/firecracker/fixtures.h"
#include "tests/hypervisor/firecracker/namespace_child.h"
#include "tests/support/file_util.h"
#include "tests/support/temp_dir.h"

namespace fe::hypervisor::firecracker {
namespace {

using namespace std::chrono_literals;
using fe::test::ReadFile;
using fe::test::TempDir;
using fe::test::WriteFile;
using test::FakeFirecracker;

class RecordingMounts : public NamespaceMounts {
 public:
  Status Bind(pid_t, int, const std::string& from, const std::string& onto) override {
    calls.push_back("bind " + from + " -> " + onto);
    ++active;
    return Status::Ok();
  }
  Status Unmount(pid_t, int, const std::string& path) override {
    calls.push_back("unmount " + path);
    --active;
    return Status::Ok();
  }
  std::vector<std::string> calls;  // only touched by the controller's thread
  std::atomic<int> active{0};
};

class FirecrackerControllerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Result<TempDir> dir = TempDir::Create();
    ASSERT_TRUE(dir.ok()) << dir.status().ToString();
    dir_.emplace(std::move(*dir));
    socket_ = dir_->Sub("api.sock");
    source_ = dir_->Sub("vm-1");
    target_ = dir_->Sub("vm-2");
    snapshot_ = target_ + "/snapshot";
    for (const std::string& d : {source_, target_, snapshot_}) ASSERT_EQ(::mkdir(d.c_str(), 0755), 0);
    options_.request_timeout = 2s;
    options_.snapshot_timeout = 2s;
    options_.alias.lock_dir = dir_->Sub("locks");
    options_.alias.lock_timeout = 1s;
    options_.alias.mounts = &mounts_;
    fake_.emplace(socket_);
  }

  std::unique_ptr<VmController> Connect() {
    Result<std::unique_ptr<VmController>> controller = ConnectFirecracker(socket_, 2s, options_);
    EXPECT_TRUE(controller.ok()) << controller.status().ToString();
    return controller.ok() ? std::move(*controller) : nullptr;
  }

  // devices.json of a fork of vm-1 into vm-2, as PrepareFork writes it.
  void WriteForkDevices() {
    SnapshotDevices devices;
    devices.drives = {{"rootfs", source_ + "/rootfs.ext4", "", false}, {"tools", "/images/tools.img", "", true}};
    devices.network_interfaces = {{"eth0", "fe-tap-1", "02:fe:00:00:00:01"}};
    devices.vsock = VsockDevice{source_ + "/vsock.sock", 3};
    devices.source_alias = PathAlias{source_, target_};
    ASSERT_TRUE(WriteFile(snapshot_ + "/devices.json", EncodeSnapshotDevices(devices)).ok());
  }

  std::optional<TempDir> dir_;
  std::string socket_, source_, target_, snapshot_;
  RecordingMounts mounts_;
  ControllerOptions options_;
  std::optional<FakeFirecracker> fake_;
};

TEST_F(FirecrackerControllerTest, PauseAndResumePatchTheVmState) {
  fake_->Start();
  auto controller = Connect();
  ASSERT_NE(controller, nullptr);
  ASSERT_TRUE(controller->Pause().ok());
  ASSERT_TRUE(controller->Resume().ok());
  std::vector<test::Request> requests = fake_->requests();
  ASSERT_EQ(requests.size(), 2u);
  EXPECT_EQ(requests[0].method + " " + requests[0].path, "PATCH /vm");
  EXPECT_EQ(requests[0].json, Json({{"state", "Paused"}}));
  EXPECT_EQ(requests[1].json, Json({{"state", "Resumed"}}));
}

TEST_F(FirecrackerControllerTest, ApiErrorsCarryTheFaultMessage) {
  fake_->Respond("PATCH /vm", 400, R"({"fault_message":"The requested operation is not supported after starting"})");
  fake_->Start();
  auto controller = Connect();
  ASSERT_NE(controller, nullptr);
  Status status = controller->Pause();
  ASSERT_FALSE(status.ok());
  EXPECT_EQ(status.code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(status.message().find("PATCH /vm via " + socket_ + ": HTTP 400: The requested operation"),
            std::string::npos)
      << status.ToString();
  EXPECT_NE(status.message().find(socket_), std::string::npos);
}

TEST_F(FirecrackerControllerTest, SnapshotCreatesAFullSnapshotAndDescribesItsDevices) {
  fake_->vm_config = Json::parse(R"({
    "drives": [{"drive_id": "rootfs", "path_on_host": "/data/vm-1/rootfs.ext4", "is_root_device": true,
                "is_read_only": false}],
    "network-interfaces": [{"iface_id": "eth0", "host_dev_name": "fe-tap-1", "guest_mac": "02:fe:00:00:00:01"}],
    "vsock": {"guest_cid": 3, "uds_path": "/data/vm-1/vsock.sock"},
    "boot-source": null, "machine-config": {"vcpu_count": 1, "mem_size_mib": 128}})");
  fake_->Start();
  auto controller = Connect();
  ASSERT_NE(controller, nullptr);
  const std::string dir = dir_->Sub("snap");
  ASSERT_TRUE(controller->Snapshot(dir).ok());
  std::vector<test::Request> requests = fake_->requests();
  ASSERT_EQ(requests.size(), 2u);
  EXPECT_EQ(requests[0].method + " " + requests[0].path, "PUT /snapshot/create");
  EXPECT_EQ(requests[0].json,
            Json({{"snapshot_type", "Full"}, {"snapshot_path", dir + "/vmstate"}, {"mem_file_path", dir + "/memory"}}));
  EXPECT_EQ(requests[1].method + " " + requests[1].path, "GET /vm/config");
  Result<SnapshotDevices> devices = ReadSnapshotDevices(dir);
  ASSERT_TRUE(devices.ok()) << devices.status().ToString();
  EXPECT_EQ(devices->drives[0].path_on_host, "/data/vm-1/rootfs.ext4");
  EXPECT_EQ(devices->network_interfaces[0].host_dev_name, "fe-tap-1");
  EXPECT_EQ(devices->vsock->guest_cid, 3u);
  EXPECT_FALSE(devices->source_alias.has_value());
}

TEST_F(FirecrackerControllerTest, ForkRestoreHoldsTheAliasExactlyDuringTheLoad) {
  WriteForkDevices();
  std::atomic<int> active_during_load{-1};
  fake_->SetHook([&](const httplib::Request& request, httplib::Response&) {
    if (request.path == "/snapshot/load") active_during_load = mounts_.active.load();
    return false;
  });
  fake_->Start();
  auto controller = Connect();
  ASSERT_NE(controller, nullptr);
  Status restored = controller->Restore(snapshot_, test::TargetIdentity(), {});
  ASSERT_TRUE(restored.ok()) << restored.ToString();
  EXPECT_EQ(active_during_load, 1) << "the alias is in place while firecracker loads";
  EXPECT_EQ(mounts_.active, 0) << "and gone afterwards";
  EXPECT_EQ(mounts_.calls, (std::vector<std::string>{"bind " + target_ + " -> " + source_, "unmount " + source_}));
  EXPECT_EQ(fake_->calls(), (std::vector<std::string>{"GET /version", "PUT /snapshot/load", "PATCH /drives/rootfs"}));
  std::vector<test::Request> requests = fake_->requests();
  const Json& load = requests[1].json;
  EXPECT_EQ(load["snapshot_path"], snapshot_ + "/vmstate");
  EXPECT_EQ(load["mem_backend"], Json({{"backend_type", "File"}, {"backend_path", snapshot_ + "/memory"}}));
  EXPECT_EQ(load["resume_vm"], false) << "the caller resumes after the host side is ready";
  EXPECT_EQ(load["network_overrides"], Json::parse(R"([{"iface_id": "eth0", "host_dev_name": "fe-tap-2"}])"));
  EXPECT_EQ(load["vsock_override"], Json({{"uds_path", target_ + "/vsock.sock"}}));
  EXPECT_EQ(requests[2].json, Json({{"drive_id", "rootfs"}, {"path_on_host", target_ + "/rootfs.ext4"}}))
      << "the drive opened through the alias now names the fork's own file";
}

TEST_F(FirecrackerControllerTest, ASharedMemoryForksLoadNamesTheTemplatesMemoryFile) {
  WriteForkDevices();
  fake_->Start();
  auto controller = Connect();
  ASSERT_NE(controller, nullptr);
  const std::string template_memory = source_ + "/snapshot/memory";
  Status restored = controller->Restore(snapshot_, test::TargetIdentity(), MemorySource{template_memory});
  ASSERT_TRUE(restored.ok()) << restored.ToString();
  std::vector<test::Request> requests = fake_->requests();
  ASSERT_GE(requests.size(), 2u);
  EXPECT_EQ(requests[1].method + " " + requests[1].path, "PUT /snapshot/load");
  EXPECT_EQ(requests[1].json["mem_backend"], Json({{"backend_type", "File"}, {"backend_path", template_memory}}))
      << "firecracker maps the template's file privately; the fork's state is still its own";
  EXPECT_EQ(requests[1].json["snapshot_path"], snapshot_ + "/vmstate");
}

TEST_F(FirecrackerControllerTest, FailedLoadStillRemovesTheAlias) {
  WriteForkDevices();
  fake_->Respond("PUT /snapshot/load", 400, R"({"fault_message":"Cannot open the memory file"})");
  fake_->Start();
  auto controller = Connect();
  ASSERT_NE(controller, nullptr);
  Status restored = controller->Restore(snapshot_, test::TargetIdentity(), {});
  ASSERT_FALSE(restored.ok());
  EXPECT_NE(restored.message().find("Cannot open the memory file"), std::string::npos) << restored.ToString();
  EXPECT_EQ(mounts_.active, 0);
  EXPECT_EQ(mounts_.calls.back(), "unmount " + source_);
  EXPECT_EQ(fake_->calls(), (std::vector<std::string>{"GET /version", "PUT /snapshot/load"}))
      << "nothing is re-pointed after a failed load";
}

TEST_F(FirecrackerControllerTest, LoadTimeoutStillRemovesTheAlias) {
  WriteForkDevices();
  options_.snapshot_timeout = 200ms;
  fake_->SetHook([&](const httplib::Request& request, httplib::Response&) {
    if (request.path == "/snapshot/load") std::this_thread::sleep_for(800ms);
    return false;
  });
  fake_->Start();
  auto controller = Connect();
  ASSERT_NE(controller, nullptr);
  Status restored = controller->Restore(snapshot_, test::TargetIdentity(), {});
  ASSERT_FALSE(restored.ok());
  EXPECT_NE(restored.message().find("PUT /snapshot/load"), std::string::npos) << restored.ToString();
  EXPECT_EQ(mounts_.active, 0);
  EXPECT_EQ(mounts_.calls.size(), 2u);
}

TEST_F(FirecrackerControllerTest, BusyAliasLockFailsBeforeTheLoad) {
  WriteForkDevices();
  options_.alias.lock_timeout = 50ms;
  // Another load of a fork of the same source holds the alias.
  AliasOptions other = options_.alias;
  Result<std::unique_ptr<SourceAlias>> held = SourceAlias::Create(1, -1, PathAlias{source_, target_}, other);
  ASSERT_TRUE(held.ok()) << held.status().ToString();
  fake_->Start();
  auto controller = Connect();
  ASSERT_NE(controller, nullptr);
  Status restored = controller->Restore(snapshot_, test::TargetIdentity(), {});
  EXPECT_EQ(restored.code(), ErrorCode::kBusy) << restored.ToString();
  EXPECT_EQ(fake_->calls(), (std::vector<std::string>{"GET /version"}));
}

TEST_F(FirecrackerControllerTest, OldFirecrackerIsRefusedBeforeAnythingChanges) {
  WriteForkDevices();
  fake_->version = "1.14.1";
  fake_->Start();
  auto controller = Connect();
  ASSERT_NE(controller, nullptr);
  Status restored = controller->Restore(snapshot_, test::TargetIdentity(), {});
  EXPECT_EQ(restored.code(), ErrorCode::kUnsupported) << restored.ToString();
  EXPECT_NE(restored.message().find("vsock_override needs firecracker 1.16.0"), std::string::npos)
      << restored.ToString();
  EXPECT_TRUE(mounts_.calls.empty());
  EXPECT_EQ(fake_->calls(), (std::vector<std::string>{"GET /version"}));
}

TEST_F(FirecrackerControllerTest, OwnSnapshotRestoresWithoutAliasOrOverrides) {
  SnapshotDevices devices;
  devices.drives = {{"rootfs", target_ + "/rootfs.ext4", "", false}};
  devices.network_interfaces = {{"eth0", "fe-tap-2", ""}};
  ASSERT_TRUE(WriteFile(snapshot_ + "/devices.json", EncodeSnapshotDevices(devices)).ok());
  fake_->version = "1.10.0";
  fake_->Start();
  auto controller = Connect();
  ASSERT_NE(controller, nullptr);
  ASSERT_TRUE(controller->Restore(snapshot_, test::TargetIdentity(), {}).ok());
  EXPECT_TRUE(mounts_.calls.empty());
  std::vector<test::Request> requests = fake_->requests();
  ASSERT_EQ(requests.size(), 2u);
  EXPECT_FALSE(requests[1].json.contains("network_overrides"));
  EXPECT_FALSE(requests[1].json.contains("vsock_override"));
}

TEST_F(FirecrackerControllerTest, ConnectWaitsForTheSocketAndTimesOut) {
  Result<std::unique_ptr<VmController>> none = ConnectFirecracker(socket_, 100ms, options_);
  ASSERT_FALSE(none.ok());
  EXPECT_NE(none.status().message().find(socket_), std::string::npos) << none.status().ToString();
  std::thread late([&] {
    std::this_thread::sleep_for(150ms);
    fake_->Start();
  });
  Result<std::unique_ptr<VmController>> controller = ConnectFirecracker(socket_, 3s, options_);
  late.join();
  EXPECT_TRUE(controller.ok()) << controller.status().ToString();
}

// Shutdown signals the process behind the socket, so the fake runs in a child process here.
TEST_F(FirecrackerControllerTest, ShutdownWaitsForTheGuestRebootThenKills) {
  fake_.reset();
  const std::string socket = socket_;
  Result<test::NamespaceChild> polite = test::NamespaceChild::Start(
      [socket] {
        FakeFirecracker fake(socket);
        fake.SetHook([](const httplib::Request& request, httplib::Response& response) {
          if (request.path != "/actions") return false;
          response.status = 204;
          std::thread([] {
            std::this_thread::sleep_for(50ms);
            ::_exit(0);  // firecracker exits when the guest reboots
          }).detach();
          return true;
        });
        fake.Serve();
      },
      /*new_namespace=*/false);
  ASSERT_TRUE(polite.ok()) << polite.status().ToString();
  options_.shutdown_timeout = 5s;
  auto controller = Connect();
  ASSERT_NE(controller, nullptr);
  auto started = std::chrono::steady_clock::now();
  ASSERT_TRUE(controller->Shutdown().ok());
  EXPECT_LT(std::chrono::steady_clock::now() - started, 3s) << "it did not wait for the full grace period";
  int polite_status = 0;
  EXPECT_EQ(::waitpid(polite->pid(), &polite_status, WNOHANG), polite->pid()) << "it had exited";
  EXPECT_TRUE(WIFEXITED(polite_status) && WEXITSTATUS(polite_status) == 0) << "by itself, not killed";
  polite->Kill();
  controller.reset();

  Result<test::NamespaceChild> stubborn = test::NamespaceChild::Start(
      [socket] {
        FakeFirecracker fake(socket);
        fake.Serve();  // acknowledges Ctrl+Alt+Del but never exits
      },
      /*new_namespace=*/false);
  ASSERT_TRUE(stubborn.ok()) << stubborn.status().ToString();
  options_.shutdown_timeout = 200ms;
  controller = Connect();
  ASSERT_NE(controller, nullptr);
  ASSERT_TRUE(controller->Shutdown().ok());
  int status = 0;
  ASSERT_EQ(::waitpid(stubborn->pid(), &status, 0), stubborn->pid());
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
}

TEST(FirecrackerLoadPlanTest, PlansTheForkRestore) {
  SnapshotDevices devices;
  devices.drives = {{"rootfs", "/data/vm-1/rootfs.ext4", "", false},
                    {"scratch", "/data/vm-1/disks/scratch.img", "", false},
                    {"tools", "/data/vm-10/tools.img", "", true}};
  devices.network_interfaces = {{"eth0", "fe-tap-1", ""}};
  devices.source_alias = PathAlias{"/data/vm-1", "/data/vm-2"};
  Result<LoadPlan> plan = PlanSnapshotLoad("/data/vm-2/snapshot", devices, test::TargetIdentity(), {1, 12, 0});
  ASSERT_TRUE(plan.ok()) << plan.status().ToString();
  ASSERT_TRUE(plan->alias.has_value());
  EXPECT_EQ(plan->alias->from, "/data/vm-1");
  EXPECT_EQ(plan->repoint, (std::vector<std::pair<std::string, std::string>>{
                               {"rootfs", "/data/vm-2/rootfs.ext4"}, {"scratch", "/data/vm-2/disks/scratch.img"}}));
  EXPECT_FALSE(plan->request.contains("vsock_override")) << "no vsock device";
}

TEST(FirecrackerLoadPlanTest, ASharedMemoryForkLoadsTheTemplatesMemoryFile) {
  SnapshotDevices devices;
  devices.source_alias = PathAlias{"/data/vm-1", "/data/vm-2"};
  Result<LoadPlan> own = PlanSnapshotLoad("/data/vm-2/snapshot", devices, test::TargetIdentity(), {1, 16, 0});
  ASSERT_TRUE(own.ok()) << own.status().ToString();
  EXPECT_EQ(own->request["mem_backend"]["backend_path"], "/data/vm-2/snapshot/memory");
  // Firecracker maps the backend file MAP_PRIVATE: the fork's load names the template's.
  Result<LoadPlan> shared = PlanSnapshotLoad("/data/vm-2/snapshot", devices, test::TargetIdentity(), {1, 16, 0},
                                             MemorySource{"/data/vm-1/snapshot/memory"});
  ASSERT_TRUE(shared.ok()) << shared.status().ToString();
  EXPECT_EQ(shared->request["mem_backend"],
            (Json{{"backend_type", "File"}, {"backend_path", "/data/vm-1/snapshot/memory"}}));
  EXPECT_EQ(shared->request["snapshot_path"], "/data/vm-2/snapshot/vmstate") << "the state is the fork's own";
}

TEST(FirecrackerLoadPlanTest, RefusesAForkWithoutATapOfItsOwn) {
  SnapshotDevices devices;
  devices.network_interfaces = {{"eth0", "fe-tap-1", ""}};
  devices.source_alias = PathAlias{"/data/vm-1", "/data/vm-2"};
  NetworkIdentity same = test::TargetIdentity();
  same.tap_device = "fe-tap-1";
  EXPECT_EQ(PlanSnapshotLoad("/s", devices, same, {1, 16, 0}).status().code(), ErrorCode::kInvalidArgument);
  same.tap_device.clear();
  EXPECT_EQ(PlanSnapshotLoad("/s", devices, same, {1, 16, 0}).status().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(PlanSnapshotLoad("/s", devices, test::TargetIdentity(), {1, 11, 0}).status().code(),
            ErrorCode::kUnsupported)
      << "network_overrides arrived in 1.12";
}

TEST(FirecrackerVersionTest, Parses) {
  Result<FirecrackerVersion> version = ParseFirecrackerVersion("1.16.0");
  ASSERT_TRUE(version.ok());
  EXPECT_TRUE(version->AtLeast(1, 16));
  EXPECT_FALSE(version->AtLeast(1, 17));
  version = ParseFirecrackerVersion("v1.12.1-dev");
  ASSERT_TRUE(version.ok());
  EXPECT_EQ(version->ToString(), "1.12.1");
  EXPECT_TRUE(ParseFirecrackerVersion("2.0").ok());
  EXPECT_FALSE(ParseFirecrackerVersion("latest").ok());
}

// The whole restore against a firecracker stand-in in its own mount namespace, with the real
// alias: the load only succeeds if the source path led to the fork's directory at that moment.
TEST_F(FirecrackerControllerTest, RealNamespaceRestoreSeesTheForkAtTheSourcePath) {
  std::string why;
  if (!test::CanMakeMountNamespaces(&why)) GTEST_SKIP() << why;
  fake_.reset();
  options_.alias.mounts = nullptr;
  WriteForkDevices();
  ASSERT_TRUE(WriteFile(source_ + "/rootfs.ext4", "source disk").ok());
  ASSERT_TRUE(WriteFile(target_ + "/rootfs.ext4", "fork disk").ok());
  const std::string socket = socket_;
  const std::string embedded = source_ + "/rootfs.ext4";
  Result<test::NamespaceChild> child = test::NamespaceChild::Start([socket, embedded] {
    FakeFirecracker fake(socket);
    auto read = [](const std::string& path) {
      Result<std::string> text = fe::test::ReadFile(path);
      return text.ok() ? *text : std::string("<missing>");
    };
    fake.SetHook([&](const httplib::Request& request, httplib::Response& response) {
      if (request.path == "/snapshot/load") {
        // What firecracker would open: the drive path embedded in the state.
        std::string disk = read(embedded);
        response.status = disk == "fork disk" ? 204 : 400;
        if (response.status == 400)
          response.set_content(Json{{"fault_message", "opened " + disk}}.dump(), "application/json");
        return true;
      }
      if (request.path == "/probe") {
        response.set_content(Json{{"disk", read(embedded)}}.dump(), "application/json");
        return true;
      }
      return false;
    });
    fake.Serve();
  });
  ASSERT_TRUE(child.ok()) << child.status().ToString();
  auto controller = Connect();
  ASSERT_NE(controller, nullptr);
  Status restored = controller->Restore(snapshot_, test::TargetIdentity(), {});
  ASSERT_TRUE(restored.ok()) << restored.ToString();
  Result<std::string> host = ReadFile(source_ + "/rootfs.ext4");
  EXPECT_EQ(host.ok() ? *host : "", "source disk") << "the host never saw the alias";
  ApiClient api(socket_);
  Result<Json> after = api.Get("/probe", 2s);
  ASSERT_TRUE(after.ok()) << after.status().ToString();
  EXPECT_EQ((*after)["disk"], "source disk") << "inside the namespace the alias is gone after the load";
}

}  // namespace
}  // namespace fe::hypervisor::firecracker
