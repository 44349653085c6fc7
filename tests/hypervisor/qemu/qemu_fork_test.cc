#include "hypervisor/qemu/qemu_fork.h"

#include <sys/stat.h>

#include <filesystem>
#include <functional>
#include <optional>

#include <gtest/gtest.h>

#include "snapshot/guest_directory.h"
#include "tests/hypervisor/qemu/fixtures.h"
#include "tests/support/file_util.h"
#include "tests/support/temp_dir.h"

namespace fe::hypervisor::qemu {
namespace {

using test::SourceConfig;
using test::Spec;

constexpr char kOrigin[] = "/data/vm-2/qemu-config.json";
constexpr char kNewGuid[] = "0f0e0d0c-0b0a-4908-8706-050403020100";

Config Fork(const Config& source, const ForkSpec& spec = Spec()) {
  Result<Config> fork = RewriteConfigForFork(source, spec, kOrigin, kNewGuid);
  EXPECT_TRUE(fork.ok()) << fork.status().ToString();
  return fork.ok() ? *fork : Config();
}

TEST(QemuForkTest, DrivesBeneathSourceMoveIntoFork) {
  Config fork = Fork(SourceConfig());
  EXPECT_EQ(fork.drives[0].file, "/data/vm-2/disks/root.qcow2");
  EXPECT_EQ(fork.drives[1].file, "/data/vm-2/disks/data.raw");
  EXPECT_EQ(fork.kernel, "/data/vm-2/boot/vmlinuz");
  EXPECT_EQ(fork.initrd, "/data/vm-2/boot/initrd.img");
  EXPECT_EQ(fork.memory_file, "/data/vm-2/mem.bin");
}

TEST(QemuForkTest, DriveElsewhereIsUntouched) {
  Config fork = Fork(SourceConfig());
  EXPECT_EQ(fork.drives[2].file, "/var/lib/forkengine/images/tools.raw");
}

TEST(QemuForkTest, PathSharingOnlyAPrefixIsUntouched) {
  Config fork = Fork(SourceConfig());
  EXPECT_EQ(fork.drives[3].file, "/data/vm-10/disks/shared.raw");
}

TEST(QemuForkTest, KernelCommandLineIsNeverRewritten) {
  Config source = SourceConfig();
  Config fork = Fork(source);
  EXPECT_EQ(fork.append, source.append);
  EXPECT_NE(fork.append.find("init=/data/vm-1/init"), std::string::npos);
}

TEST(QemuForkTest, NetworkIdentityIsTheForks) {
  Config fork = Fork(SourceConfig());
  ASSERT_EQ(fork.nics.size(), 1u);
  EXPECT_EQ(fork.nics[0].ifname, "fe-tap-2");
  EXPECT_EQ(fork.nics[0].mac, "02:fe:00:00:00:02");
  EXPECT_EQ(fork.nics[0].id, "net0");
  ASSERT_TRUE(fork.vsock.has_value());
  EXPECT_EQ(fork.vsock->guest_cid, 7u);
}

TEST(QemuForkTest, SocketsAndLogsMoveIntoForkDirectory) {
  Config fork = Fork(SourceConfig());
  EXPECT_EQ(fork.qmp_socket, "/data/vm-2/run/qmp.sock");
  EXPECT_EQ(fork.chardevs[0].path, "/data/vm-2/run/console.sock");
  EXPECT_EQ(fork.chardevs[1].path, "/data/vm-2/logs/serial.log");
  // Outside the source directory: still the QEMU process's own, so into the fork's directory.
  EXPECT_EQ(fork.chardevs[2].path, "/data/vm-2/agent.sock");
}

TEST(QemuForkTest, VmgenidIsRenewedAndUnknownFieldsKept) {
  Config source = SourceConfig();
  Config fork = Fork(source);
  EXPECT_EQ(fork.vmgenid, kNewGuid);
  EXPECT_EQ(fork.extra, source.extra);
  EXPECT_EQ(fork.drives[0].extra["cache"], "none");
  EXPECT_EQ(fork.nics[0].extra["queues"], 1);
  EXPECT_EQ(fork.vsock->extra["owner"], "engine");
}

TEST(QemuForkTest, OnlyTheExpectedFieldsChange) {
  Config source = SourceConfig();
  Json before = Json::parse(SerializeConfig(source));
  Json after = Json::parse(SerializeConfig(Fork(source)));
  std::vector<std::string> changed;
  for (const Json& op : Json::diff(before, after)) changed.push_back(op["path"]);
  EXPECT_EQ(changed, (std::vector<std::string>{"/memory_file", "/kernel", "/initrd", "/drives/0/file", "/drives/1/file",
                                               "/nics/0/ifname", "/nics/0/mac", "/chardevs/0/path", "/chardevs/1/path",
                                               "/chardevs/2/path", "/qmp_socket", "/vsock/guest_cid", "/vmgenid"}));
}

TEST(QemuForkTest, RewritingTwiceChangesNothingMore) {
  Config once = Fork(SourceConfig());
  Config twice = Fork(once);
  EXPECT_EQ(SerializeConfig(twice), SerializeConfig(once));
}

TEST(QemuForkTest, WritableDriveOutsideSourceIsRefused) {
  Config source = SourceConfig();
  source.drives[3].read_only = false;  // /data/vm-10/...: a sibling, not beneath /data/vm-1
  Result<Config> fork = RewriteConfigForFork(source, Spec(), kOrigin, kNewGuid);
  ASSERT_FALSE(fork.ok());
  EXPECT_EQ(fork.status().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(fork.status().message().find(std::string(kOrigin) + ": field 'drives[3].file'"), std::string::npos)
      << fork.status().message();
}

TEST(QemuForkTest, RamFileOutsideSourceIsRefused) {
  Config source = SourceConfig();
  source.memory_file = "/dev/shm/vm-1.mem";
  Result<Config> fork = RewriteConfigForFork(source, Spec(), kOrigin, kNewGuid);
  ASSERT_FALSE(fork.ok());
  EXPECT_NE(fork.status().message().find(std::string(kOrigin) + ": field 'memory_file'"), std::string::npos)
      << fork.status().message();
}

TEST(QemuForkTest, ForkSharingTheSourceIdentityIsRefused) {
  struct Case {
    std::function<void(NetworkIdentity&)> change;
    std::string field;
  };
  const std::vector<Case> cases = {
      {[](NetworkIdentity& id) { id.tap_device = "fe-tap-1"; }, "nics[0].ifname"},
      {[](NetworkIdentity& id) { id.tap_device = ""; }, "nics[0].ifname"},
      {[](NetworkIdentity& id) { id.mac = "02:fe:00:00:00:01"; }, "nics[0].mac"},
      {[](NetworkIdentity& id) { id.vsock_cid = 3; }, "vsock.guest_cid"},
      {[](NetworkIdentity& id) { id.vsock_cid = 0; }, "vsock.guest_cid"},
  };
  for (const Case& c : cases) {
    ForkSpec spec = Spec();
    c.change(spec.target_identity);
    Result<Config> fork = RewriteConfigForFork(SourceConfig(), spec, kOrigin, kNewGuid);
    ASSERT_FALSE(fork.ok()) << c.field;
    EXPECT_NE(fork.status().message().find("field '" + c.field + "'"), std::string::npos) << fork.status().message();
  }
}

TEST(QemuForkTest, ACopyThatKeepsItsInstancesIdentityKeepsItsTapMacAndCid) {
  ForkSpec spec = Spec();
  spec.target_identity = spec.source_identity;
  spec.keeps_identity = true;  // a snapshot of the instance, or the instance rolled back to one
  const Config copy = Fork(SourceConfig(), spec);
  ASSERT_EQ(copy.nics.size(), 1u);
  EXPECT_EQ(copy.nics[0].ifname, spec.source_identity.tap_device);
  EXPECT_EQ(copy.nics[0].mac, spec.source_identity.mac);
  ASSERT_TRUE(copy.vsock.has_value());
  EXPECT_EQ(copy.vsock->guest_cid, spec.source_identity.vsock_cid);
  spec.target_identity.tap_device = "";
  EXPECT_FALSE(RewriteConfigForFork(SourceConfig(), spec, kOrigin, kNewGuid).ok()) << "a TAP is still needed";
}

TEST(QemuForkTest, MoreThanOneNicIsUnsupported) {
  Config source = SourceConfig();
  source.nics.push_back(source.nics[0]);
  source.nics[1].id = "net1";
  Result<Config> fork = RewriteConfigForFork(source, Spec(), kOrigin, kNewGuid);
  ASSERT_FALSE(fork.ok());
  EXPECT_EQ(fork.status().code(), ErrorCode::kUnsupported);
}

TEST(QemuForkTest, RuntimePathsCollidingInForkAreRefused) {
  Config source = SourceConfig();
  source.chardevs[2].path = "/run/forkengine/vm-1/qmp.sock";  // lands on <target>/qmp.sock ...
  source.qmp_socket = "/data/vm-1/qmp.sock";                  // ... as does the QMP socket
  Result<Config> fork = RewriteConfigForFork(source, Spec(), kOrigin, kNewGuid);
  ASSERT_FALSE(fork.ok());
  EXPECT_NE(fork.status().message().find("field 'chardevs[2].path'"), std::string::npos) << fork.status().message();
}

TEST(QemuForkTest, SocketPathTooLongInForkIsRefused) {
  const std::string target = "/" + std::string(100, 'f');
  Result<Config> fork = RewriteConfigForFork(SourceConfig(), Spec(test::kSourceDir, target), kOrigin, kNewGuid);
  ASSERT_FALSE(fork.ok());
  EXPECT_NE(fork.status().message().find("socket path is longer than 107 bytes"), std::string::npos)
      << fork.status().message();
}

// PrepareFork on real files: the fork directory is a clone of /data/vm-1's files (never read).
class QemuPrepareForkTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Result<fe::test::TempDir> dir = fe::test::TempDir::Create();
    ASSERT_TRUE(dir.ok()) << dir.status().ToString();
    dir_.emplace(std::move(*dir));
    target_ = dir_->Sub("vm-2");
    ASSERT_EQ(::mkdir(target_.c_str(), 0755), 0);
    ASSERT_TRUE(fe::test::WriteFile(target_ + "/" + kConfigFile, test::FixtureText("source_config.json")).ok());
  }
  std::string ConfigText() {
    Result<std::string> text = fe::test::ReadFile(target_ + "/" + kConfigFile);
    return text.ok() ? *text : text.status().ToString();
  }
  // The device state where a standby leaves it (snapshot/vmstate), then PrepareFork from the snapshot.
  Result<PreparedFork> PrepareFromSnapshotWithState() {
    if (::mkdir((target_ + "/snapshot").c_str(), 0755) != 0) return Status::FromErrno(errno, "mkdir", target_);
    FE_RETURN_IF_ERROR(fe::test::WriteFile(target_ + "/snapshot/vmstate", "state"));
    ForkSpec spec = Spec(test::kSourceDir, target_);
    spec.from_snapshot = true;
    return PrepareFork(spec);
  }

  std::optional<fe::test::TempDir> dir_;
  std::string target_;
};

TEST_F(QemuPrepareForkTest, RewritesConfigFileAndLeavesNoTemporaries) {
  Result<PreparedFork> prepared = PrepareFork(Spec(test::kSourceDir, target_));
  ASSERT_TRUE(prepared.ok()) << prepared.status().ToString();
  EXPECT_EQ(prepared->rewritten_files, std::vector<std::string>{kConfigFile});
  EXPECT_TRUE(prepared->restore.snapshot_dir.empty());
  EXPECT_FALSE(prepared->restore.needs_source_path_alias);
  EXPECT_EQ(prepared->restore.identity.tap_device, "fe-tap-2");

  Result<Config> fork = ReadConfig(target_);
  ASSERT_TRUE(fork.ok()) << fork.status().ToString();
  EXPECT_EQ(fork->drives[0].file, target_ + "/disks/root.qcow2");
  EXPECT_EQ(fork->qmp_socket, target_ + "/run/qmp.sock");
  EXPECT_EQ(fork->nics[0].mac, "02:fe:00:00:00:02");
  EXPECT_NE(fork->vmgenid, SourceConfig().vmgenid);
  EXPECT_EQ(Json::parse(ConfigText())["labels"]["tier"], "pool");
  std::vector<std::string> names;
  for (const auto& entry : std::filesystem::directory_iterator(target_)) names.push_back(entry.path().filename());
  EXPECT_EQ(names, std::vector<std::string>{kConfigFile});
}

TEST_F(QemuPrepareForkTest, FromSnapshotFindsStateThroughManifest) {
  snapshot::Manifest manifest;
  manifest.hypervisor = "qemu";
  manifest.snapshot_dir = "snapshot";
  manifest.files = {{kConfigFile, snapshot::FileRole::kConfig}, {"snapshot/vmstate", snapshot::FileRole::kDeviceState}};
  ASSERT_TRUE(snapshot::WriteManifest(target_, manifest).ok());
  Result<PreparedFork> prepared = PrepareFromSnapshotWithState();
  ASSERT_TRUE(prepared.ok()) << prepared.status().ToString();
  EXPECT_EQ(prepared->restore.snapshot_dir, target_ + "/snapshot");
  EXPECT_FALSE(prepared->restore.needs_source_path_alias);
}

// A guest directory imported without a manifest and put in standby: the engine's standby writes the
// snapshot to the conventional snapshot/ and no manifest.
TEST_F(QemuPrepareForkTest, FromSnapshotWithoutManifestFindsStateInTheConventionalDirectory) {
  Result<PreparedFork> prepared = PrepareFromSnapshotWithState();
  ASSERT_TRUE(prepared.ok()) << prepared.status().ToString();
  EXPECT_EQ(prepared->restore.snapshot_dir, target_ + "/snapshot");
}

TEST_F(QemuPrepareForkTest, FromSnapshotWithoutManifestOrStateFileFailsNamingTheStateFile) {
  ForkSpec spec = Spec(test::kSourceDir, target_);
  spec.from_snapshot = true;
  Result<PreparedFork> prepared = PrepareFork(spec);
  ASSERT_FALSE(prepared.ok());
  EXPECT_EQ(prepared.status().code(), ErrorCode::kNotFound);
  EXPECT_NE(prepared.status().message().find(target_ + "/snapshot/vmstate"), std::string::npos)
      << prepared.status().message();
}

TEST_F(QemuPrepareForkTest, FromSnapshotWithoutStateFileFailsAndWritesNothing) {
  snapshot::Manifest manifest;
  manifest.hypervisor = "qemu";
  manifest.snapshot_dir = "snapshot";
  ASSERT_TRUE(snapshot::WriteManifest(target_, manifest).ok());
  const std::string before = ConfigText();

  ForkSpec spec = Spec(test::kSourceDir, target_);
  spec.from_snapshot = true;
  Result<PreparedFork> prepared = PrepareFork(spec);
  ASSERT_FALSE(prepared.ok());
  EXPECT_EQ(prepared.status().code(), ErrorCode::kNotFound);
  EXPECT_NE(prepared.status().message().find(target_ + "/snapshot/vmstate"), std::string::npos)
      << prepared.status().message();
  EXPECT_EQ(ConfigText(), before);
}

TEST_F(QemuPrepareForkTest, MalformedConfigNamesFileAndFieldAndStaysAsItWas) {
  Json root = Json::parse(ConfigText());
  root["drives"][1]["file"] = false;
  ASSERT_TRUE(fe::test::WriteFile(target_ + "/" + kConfigFile, root.dump()).ok());
  const std::string before = ConfigText();

  Result<PreparedFork> prepared = PrepareFork(Spec(test::kSourceDir, target_));
  ASSERT_FALSE(prepared.ok());
  EXPECT_NE(prepared.status().message().find(target_ + "/" + kConfigFile + ": field 'drives[1].file'"),
            std::string::npos)
      << prepared.status().message();
  EXPECT_EQ(ConfigText(), before);
}

TEST(QemuNewGuidTest, IsAVersion4Guid) {
  const std::string a = NewGuid();
  const std::string b = NewGuid();
  EXPECT_NE(a, b);
  ASSERT_EQ(a.size(), 36u);
  EXPECT_EQ(a[14], '4');
  EXPECT_NE(std::string("89ab").find(a[19]), std::string::npos);
}

}  // namespace
}  // namespace fe::hypervisor::qemu
