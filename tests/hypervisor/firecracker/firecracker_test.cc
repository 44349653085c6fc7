// The firecracker plugin on fork directories: PrepareFork for stopped and standby forks (what it
// writes, what it refuses, that a refusal writes nothing and the source is never written), the
// launch commands, and Connect through the plugin.
#include "hypervisor/firecracker/firecracker.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <optional>

#include "hypervisor/firecracker/instance_files.h"
#include "hypervisor/firecracker/snapshot_devices.h"
#include "snapshot/guest_directory.h"
#include "tests/hypervisor/firecracker/fake_firecracker.h"
#include "tests/hypervisor/firecracker/fixtures.h"
#include "tests/support/file_util.h"
#include "tests/support/temp_dir.h"

namespace fe::hypervisor::firecracker {
namespace {

using namespace std::chrono_literals;
using fe::test::ReadFile;
using fe::test::TempDir;
using fe::test::WriteFile;
using firecracker::Json;
using firecracker::PathAlias;
using firecracker::ReadSnapshotDevices;
using firecracker::SnapshotDevices;

std::string Replace(std::string text, const std::string& from, const std::string& to) {
  for (size_t at = text.find(from); at != std::string::npos; at = text.find(from, at + to.size())) {
    text.replace(at, from.size(), to);
  }
  return text;
}

class FirecrackerPluginTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Result<TempDir> dir = TempDir::Create();
    ASSERT_TRUE(dir.ok()) << dir.status().ToString();
    dir_.emplace(std::move(*dir));
    source_ = dir_->Sub("vm-1");
    target_ = dir_->Sub("vm-2");
    ASSERT_EQ(::mkdir(source_.c_str(), 0755), 0);
    // The fixture, written for /data/vm-1, moved to this test's source directory ("/data/vm-10" stays).
    config_text_ = Replace(firecracker::test::FixtureText("config.json"), "\"/data/vm-1/", "\"" + source_ + "/");
    config_text_ = Replace(config_text_, "init=/data/vm-1/", "init=" + source_ + "/");
    ASSERT_TRUE(WriteFile(source_ + "/config.json", config_text_).ok());
  }

  // A standby source: its snapshot and the devices.json Snapshot() writes.
  void AddSnapshot(const std::string& dir, const std::optional<PathAlias>& alias = std::nullopt) {
    ASSERT_EQ(::mkdir((dir + "/snapshot").c_str(), 0755), 0);
    ASSERT_TRUE(WriteFile(dir + "/snapshot/vmstate", "binary state naming " + source_).ok());
    ASSERT_TRUE(WriteFile(dir + "/snapshot/memory", std::string(4096, '\0')).ok());
    Result<SnapshotDevices> devices = firecracker::ParseSnapshotDevices(Json::parse(config_text_), "config.json");
    ASSERT_TRUE(devices.ok()) << devices.status().ToString();
    devices->source_alias = alias;
    ASSERT_TRUE(WriteFile(dir + "/snapshot/devices.json",
                          firecracker::EncodeSnapshotDevices(*devices, Json{{"written_by", "test"}}))
                    .ok());
  }

  // The clone: a copy of the source directory.
  void Clone() { std::filesystem::copy(source_, target_, std::filesystem::copy_options::recursive); }

  ForkSpec Spec(bool from_snapshot) const {
    ForkSpec spec;
    spec.source_dir = source_;
    spec.target_dir = target_;
    spec.source_identity = firecracker::test::SourceIdentity();
    spec.target_identity = firecracker::test::TargetIdentity();
    spec.from_snapshot = from_snapshot;
    return spec;
  }

  std::string Read(const std::string& path) {
    Result<std::string> text = ReadFile(path);
    EXPECT_TRUE(text.ok()) << text.status().ToString();
    return text.ok() ? *text : std::string();
  }

  std::optional<TempDir> dir_;
  std::string source_, target_, config_text_;
};

TEST_F(FirecrackerPluginTest, DeclaresItsCapabilities) {
  const Plugin& plugin = FirecrackerPlugin();
  EXPECT_EQ(plugin.Kind(), "firecracker");
  PluginCapabilities capabilities = plugin.Capabilities();
  EXPECT_TRUE(capabilities.fork_stopped);
  EXPECT_TRUE(capabilities.fork_standby);
  EXPECT_TRUE(capabilities.snapshot_keeps_vsock_cid);
  EXPECT_TRUE(capabilities.restore_needs_path_alias);
}

TEST_F(FirecrackerPluginTest, StoppedForkRewritesTheConfigAndNeverTheSource) {
  Clone();
  Result<fe::test::TreeSnapshot> before = fe::test::SnapshotTree(source_);
  ASSERT_TRUE(before.ok());
  Result<PreparedFork> prepared = FirecrackerPlugin().PrepareFork(Spec(false));
  ASSERT_TRUE(prepared.ok()) << prepared.status().ToString();
  EXPECT_EQ(prepared->rewritten_files, std::vector<std::string>{"config.json"});
  EXPECT_TRUE(prepared->restore.snapshot_dir.empty());
  EXPECT_FALSE(prepared->restore.needs_source_path_alias);
  EXPECT_EQ(prepared->restore.identity.tap_device, "fe-tap-2");
  Json config = Json::parse(Read(target_ + "/config.json"));
  EXPECT_EQ(config["drives"][0]["path_on_host"], target_ + "/rootfs.ext4");
  EXPECT_EQ(config["drives"][2]["path_on_host"], "/data/vm-10/tools.img");
  EXPECT_EQ(config["vsock"]["uds_path"], target_ + "/vsock.sock");
  EXPECT_EQ(config["vsock"]["guest_cid"], 7);
  EXPECT_EQ(config["network-interfaces"][0]["host_dev_name"], "fe-tap-2");
  EXPECT_EQ(config["boot-source"]["boot_args"], Json::parse(config_text_)["boot-source"]["boot_args"]);
  Result<fe::test::TreeSnapshot> after = fe::test::SnapshotTree(source_);
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(fe::test::DiffSnapshots(*before, *after, {.ctime = true}), "");
  Result<std::vector<std::string>> names = fe::test::ListDir(target_);
  ASSERT_TRUE(names.ok());
  EXPECT_EQ(*names, std::vector<std::string>{"config.json"}) << "no temporary file left behind";
}

TEST_F(FirecrackerPluginTest, StandbyForkRecordsTheAliasForTheRestore) {
  AddSnapshot(source_);
  Clone();
  Result<PreparedFork> prepared = FirecrackerPlugin().PrepareFork(Spec(true));
  ASSERT_TRUE(prepared.ok()) << prepared.status().ToString();
  EXPECT_EQ(prepared->rewritten_files, (std::vector<std::string>{"config.json", "snapshot/devices.json"}));
  EXPECT_EQ(prepared->restore.snapshot_dir, target_ + "/snapshot");
  EXPECT_TRUE(prepared->restore.needs_source_path_alias);
  Result<SnapshotDevices> devices = ReadSnapshotDevices(target_ + "/snapshot");
  ASSERT_TRUE(devices.ok()) << devices.status().ToString();
  ASSERT_TRUE(devices->source_alias.has_value());
  EXPECT_EQ(devices->source_alias->from, source_);
  EXPECT_EQ(devices->source_alias->to, target_);
  EXPECT_EQ(devices->drives[0].path_on_host, source_ + "/rootfs.ext4") << "what the state embeds, unchanged";
  EXPECT_EQ(Json::parse(Read(target_ + "/snapshot/devices.json"))["written_by"], "test") << "unknown fields kept";
  EXPECT_EQ(Read(target_ + "/snapshot/vmstate"), "binary state naming " + source_)
      << "the binary state is never rewritten";
  EXPECT_FALSE(ReadSnapshotDevices(source_ + "/snapshot")->source_alias.has_value()) << "the source's is untouched";
}

TEST_F(FirecrackerPluginTest, StandbyForkWithoutDevicesFileIsDescribedFromTheConfig) {
  AddSnapshot(source_);
  ASSERT_EQ(::unlink((source_ + "/snapshot/devices.json").c_str()), 0);
  Clone();
  Result<PreparedFork> prepared = FirecrackerPlugin().PrepareFork(Spec(true));
  ASSERT_TRUE(prepared.ok()) << prepared.status().ToString();
  Result<SnapshotDevices> devices = ReadSnapshotDevices(target_ + "/snapshot");
  ASSERT_TRUE(devices.ok()) << devices.status().ToString();
  EXPECT_EQ(devices->drives[0].path_on_host, source_ + "/rootfs.ext4") << "the source's config, not the rewrite";
  EXPECT_EQ(devices->network_interfaces[0].host_dev_name, "fe-tap-1");
  EXPECT_EQ(devices->source_alias->from, source_);
}

TEST_F(FirecrackerPluginTest, ForkOfAnUnrestoredForkAliasesTheDirectoryTheStateNames) {
  // vm-1 is itself a fork of vm-0 that was never restored: its state still names vm-0.
  const std::string origin = dir_->Sub("vm-0");
  AddSnapshot(source_, PathAlias{origin, source_});
  Clone();
  Result<PreparedFork> prepared = FirecrackerPlugin().PrepareFork(Spec(true));
  // The fixture's devices name the source dir, which is not beneath vm-0: refused as writable outside.
  ASSERT_FALSE(prepared.ok());
  EXPECT_EQ(prepared.status().code(), ErrorCode::kUnsupported) << prepared.status().ToString();

  // Devices that do live in vm-0, as vm-0's snapshot recorded them.
  SnapshotDevices devices;
  devices.drives = {{"rootfs", origin + "/rootfs.ext4", "", false}};
  devices.network_interfaces = {{"eth0", "fe-tap-0", ""}};
  devices.vsock = firecracker::VsockDevice{origin + "/vsock.sock", 3};
  devices.source_alias = PathAlias{origin, source_};
  ASSERT_TRUE(WriteFile(target_ + "/snapshot/devices.json", firecracker::EncodeSnapshotDevices(devices)).ok());
  ASSERT_TRUE(WriteFile(target_ + "/config.json", config_text_).ok());
  prepared = FirecrackerPlugin().PrepareFork(Spec(true));
  ASSERT_TRUE(prepared.ok()) << prepared.status().ToString();
  Result<SnapshotDevices> after = ReadSnapshotDevices(target_ + "/snapshot");
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(after->source_alias->from, origin);
  EXPECT_EQ(after->source_alias->to, target_);
}

TEST_F(FirecrackerPluginTest, RefusalWritesNothing) {
  AddSnapshot(source_);
  Json config = Json::parse(config_text_);
  config["network-interfaces"].push_back({{"iface_id", "eth1"}, {"host_dev_name", "fe-tap-9"}});
  ASSERT_TRUE(WriteFile(source_ + "/config.json", config.dump(2)).ok());
  Clone();
  Result<fe::test::TreeSnapshot> before = fe::test::SnapshotTree(target_);
  ASSERT_TRUE(before.ok());
  Result<PreparedFork> prepared = FirecrackerPlugin().PrepareFork(Spec(true));
  ASSERT_FALSE(prepared.ok());
  EXPECT_EQ(prepared.status().code(), ErrorCode::kUnsupported);
  EXPECT_NE(prepared.status().message().find(target_ + "/config.json: network-interfaces[1]"), std::string::npos)
      << prepared.status().ToString();
  Result<fe::test::TreeSnapshot> after = fe::test::SnapshotTree(target_);
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(fe::test::DiffSnapshots(*before, *after, {.ctime = true}), "");
}

TEST_F(FirecrackerPluginTest, StandbyForkRefusesDevicesItWouldShare) {
  AddSnapshot(source_);
  Clone();
  Result<SnapshotDevices> devices = ReadSnapshotDevices(target_ + "/snapshot");
  ASSERT_TRUE(devices.ok());
  SnapshotDevices shared_vsock = *devices;
  shared_vsock.vsock->uds_path = "/run/vm-1.vsock";
  ASSERT_TRUE(WriteFile(target_ + "/snapshot/devices.json", firecracker::EncodeSnapshotDevices(shared_vsock)).ok());
  Result<PreparedFork> prepared = FirecrackerPlugin().PrepareFork(Spec(true));
  ASSERT_FALSE(prepared.ok());
  EXPECT_NE(prepared.status().message().find("devices.json: vsock.uds_path"), std::string::npos)
      << prepared.status().ToString();

  SnapshotDevices same_tap = *devices;
  ASSERT_TRUE(WriteFile(target_ + "/snapshot/devices.json", firecracker::EncodeSnapshotDevices(same_tap)).ok());
  ForkSpec spec = Spec(true);
  spec.target_identity.tap_device = "fe-tap-1";
  prepared = FirecrackerPlugin().PrepareFork(spec);
  ASSERT_FALSE(prepared.ok());
  EXPECT_NE(prepared.status().message().find("is the source's"), std::string::npos) << prepared.status().ToString();
}

TEST_F(FirecrackerPluginTest, StandbyForkNeedsTheSnapshotFiles) {
  AddSnapshot(source_);
  ASSERT_EQ(::unlink((source_ + "/snapshot/memory").c_str()), 0);
  Clone();
  Result<PreparedFork> prepared = FirecrackerPlugin().PrepareFork(Spec(true));
  ASSERT_FALSE(prepared.ok());
  EXPECT_EQ(prepared.status().code(), ErrorCode::kNotFound);
  EXPECT_NE(prepared.status().message().find(target_ + "/snapshot/memory"), std::string::npos)
      << prepared.status().ToString();
}

TEST_F(FirecrackerPluginTest, RefusesNestedOrRelativeDirectories) {
  ForkSpec nested = Spec(false);
  nested.target_dir = source_ + "/fork";
  EXPECT_EQ(FirecrackerPlugin().PrepareFork(nested).status().code(), ErrorCode::kInvalidArgument);
  ForkSpec relative = Spec(false);
  relative.source_dir = "vm-1";
  EXPECT_EQ(FirecrackerPlugin().PrepareFork(relative).status().code(), ErrorCode::kInvalidArgument);
}

TEST_F(FirecrackerPluginTest, ManifestNamesTheFiles) {
  ASSERT_TRUE(WriteFile(source_ + "/vm.json", config_text_).ok());
  ASSERT_EQ(::unlink((source_ + "/config.json").c_str()), 0);
  snapshot::Manifest manifest;
  manifest.hypervisor = "firecracker";
  manifest.snapshot_dir = "snap";
  manifest.files = {{"vm.json", snapshot::FileRole::kConfig}, {"rootfs.ext4", snapshot::FileRole::kDisk}};
  ASSERT_TRUE(snapshot::WriteManifest(source_, manifest).ok());
  Clone();
  Result<PreparedFork> prepared = FirecrackerPlugin().PrepareFork(Spec(false));
  ASSERT_TRUE(prepared.ok()) << prepared.status().ToString();
  EXPECT_EQ(prepared->rewritten_files, std::vector<std::string>{"vm.json"});
  Result<LaunchCommand> boot = FirecrackerPlugin().Launch(target_, LaunchMode::kBoot, {});
  ASSERT_TRUE(boot.ok()) << boot.status().ToString();
  EXPECT_EQ(boot->argv.back(), target_ + "/vm.json");

  manifest.hypervisor = "qemu";
  ASSERT_TRUE(snapshot::WriteManifest(target_, manifest).ok());
  Result<PreparedFork> other = FirecrackerPlugin().PrepareFork(Spec(false));
  ASSERT_FALSE(other.ok());
  EXPECT_NE(other.status().message().find("hypervisor"), std::string::npos) << other.status().ToString();
}

TEST_F(FirecrackerPluginTest, LaunchCommands) {
  Result<LaunchCommand> boot = FirecrackerPlugin().Launch(source_, LaunchMode::kBoot, {});
  ASSERT_TRUE(boot.ok()) << boot.status().ToString();
  EXPECT_EQ(boot->argv, (std::vector<std::string>{"firecracker", "--api-sock", source_ + "/api.sock", "--config-file",
                                                  source_ + "/config.json"}));
  EXPECT_EQ(boot->api_socket, source_ + "/api.sock");
  Result<LaunchCommand> restore = FirecrackerPlugin().Launch(source_, LaunchMode::kRestore, {});
  ASSERT_TRUE(restore.ok()) << restore.status().ToString();
  EXPECT_EQ(restore->argv, (std::vector<std::string>{"unshare", "--mount", "--propagation", "slave", "--",
                                                     "firecracker", "--api-sock", source_ + "/api.sock"}))
      << "a mount namespace of its own for the alias";
  EXPECT_EQ(FirecrackerPlugin().Launch(dir_->Sub("empty"), LaunchMode::kBoot, {}).status().code(),
            ErrorCode::kNotFound);
  EXPECT_EQ(FirecrackerPlugin().Launch("/" + std::string(120, 'x'), LaunchMode::kRestore, {}).status().code(),
            ErrorCode::kInvalidArgument);
}

TEST_F(FirecrackerPluginTest, ConnectsThroughThePlugin) {
  const std::string socket = dir_->Sub("api.sock");
  firecracker::test::FakeFirecracker fake(socket);
  fake.Start();
  Result<std::unique_ptr<VmController>> controller = FirecrackerPlugin().Connect(socket, 2s);
  ASSERT_TRUE(controller.ok()) << controller.status().ToString();
  EXPECT_TRUE((*controller)->Pause().ok());
  EXPECT_EQ(fake.calls(), std::vector<std::string>{"PATCH /vm"});
}

}  // namespace
}  // namespace fe::hypervisor::firecracker
