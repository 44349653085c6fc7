#include "hypervisor/cloud_hypervisor/cloud_hypervisor.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include <gtest/gtest.h>

#include "snapshot/guest_directory.h"
#include "tests/hypervisor/cloud_hypervisor/fixtures.h"
#include "tests/support/scratch.h"
#include "tests/support/temp_dir.h"

namespace fe::hypervisor::cloud_hypervisor {
namespace {

using cloud_hypervisor::Json;
using cloud_hypervisor::test::FixtureText;
using fe::test::ReadFile;
using fe::test::WriteFile;
using snapshot::FileRole;

bool Exists(const std::string& path) {
  struct stat st {};
  return ::lstat(path.c_str(), &st) == 0;
}

void BindSocket(const std::string& path) {
  int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::memcpy(address.sun_path, path.c_str(), path.size());
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0) << std::strerror(errno);
  ::close(fd);
}

snapshot::Manifest ForkManifest() {
  snapshot::Manifest manifest;
  manifest.hypervisor = "cloud-hypervisor";
  manifest.snapshot_dir = "snapshot";
  manifest.files = {
      {"rootfs.raw", FileRole::kDisk},
      {"vmlinux", FileRole::kPayload},
      {"config.json", FileRole::kConfig},
      {"snapshot/config.json", FileRole::kConfig},
      {"snapshot/state.json", FileRole::kDeviceState},
      {"snapshot/memory-ranges", FileRole::kMemory},
      {"api.sock", FileRole::kRuntime},
      {"cloud-hypervisor.pid", FileRole::kRuntime},
      {"logs", FileRole::kRuntime},
  };
  return manifest;
}

// The fork directory as the storage layer leaves it: a complete clone of a standby source in
// /data/vm-1 (which these tests never need: PrepareFork reads and writes only the fork).
class CloudHypervisorPluginTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Result<fe::test::TempDir> root = fe::test::TempDir::Create();
    ASSERT_TRUE(root.ok()) << root.status().ToString();
    root_.emplace(std::move(*root));
    dir_ = root_->Sub("vm-2");
    ASSERT_EQ(::mkdir(dir_.c_str(), 0755), 0);
    ASSERT_EQ(::mkdir(Path("snapshot").c_str(), 0755), 0);
    ASSERT_EQ(::mkdir(Path("logs").c_str(), 0755), 0);
    FE_ASSERT_OK(WriteFile(Path("config.json"), FixtureText("boot_config.json")));
    FE_ASSERT_OK(WriteFile(Path("snapshot/config.json"), FixtureText("snapshot_config.json")));
    FE_ASSERT_OK(WriteFile(Path("snapshot/state.json"),
                           R"({"snapshots":{"_disk0":{"snapshot_data":{"disk_path":"/data/vm-1/rootfs.raw"}}}})"));
    FE_ASSERT_OK(WriteFile(Path("snapshot/memory-ranges"), std::string("\0\1\2/data/vm-1\3", 15)));
    FE_ASSERT_OK(WriteFile(Path("rootfs.raw"), "disk"));
    FE_ASSERT_OK(WriteFile(Path("vmlinux"), "kernel"));
    FE_ASSERT_OK(WriteFile(Path("cloud-hypervisor.pid"), "4242\n"));
    FE_ASSERT_OK(WriteFile(Path("logs/serial.log"), "[    0.000000] Linux version"));
    BindSocket(Path("api.sock"));
    FE_ASSERT_OK(snapshot::WriteManifest(dir_, ForkManifest()));
  }

  std::string Path(std::string_view name) const { return dir_ + "/" + std::string(name); }
  Json Config(std::string_view name) const { return Json::parse(*ReadFile(Path(name))); }

  ForkSpec Spec(bool from_snapshot = true) const {
    ForkSpec spec;
    spec.source_dir = cloud_hypervisor::test::kSourceDir;
    spec.target_dir = dir_;
    spec.source_identity = cloud_hypervisor::test::SourceIdentity();
    spec.target_identity = cloud_hypervisor::test::TargetIdentity();
    spec.from_snapshot = from_snapshot;
    return spec;
  }

  // Names in `dir` that a rewrite left behind.
  std::vector<std::string> Temporaries(std::string_view sub = "") const {
    std::vector<std::string> found;
    Result<std::vector<std::string>> names = fe::test::ListDir(sub.empty() ? dir_ : Path(sub));
    for (const std::string& name : names.ok() ? *names : std::vector<std::string>{}) {
      if (name.find(".tmp-") != std::string::npos) found.push_back(name);
    }
    return found;
  }

  std::optional<fe::test::TempDir> root_;
  std::string dir_;
};

TEST_F(CloudHypervisorPluginTest, DeclaresItsKindAndCapabilities) {
  const Plugin& plugin = CloudHypervisorPlugin();
  EXPECT_EQ(plugin.Kind(), "cloud-hypervisor");
  PluginCapabilities capabilities = plugin.Capabilities();
  EXPECT_TRUE(capabilities.fork_stopped);
  EXPECT_TRUE(capabilities.fork_standby);
  EXPECT_TRUE(capabilities.snapshot_keeps_vsock_cid);
  EXPECT_FALSE(capabilities.restore_needs_path_alias);
}

TEST_F(CloudHypervisorPluginTest, PrepareForkFromSnapshotRewritesConfigsAndPlansTheRestore) {
  std::string state = *ReadFile(Path("snapshot/state.json"));
  std::string memory = *ReadFile(Path("snapshot/memory-ranges"));
  std::string manifest = *ReadFile(Path("manifest.json"));
  Result<PreparedFork> prepared = CloudHypervisorPlugin().PrepareFork(Spec());
  FE_ASSERT_OK(prepared);

  EXPECT_EQ(prepared->rewritten_files, (std::vector<std::string>{"config.json", "snapshot/config.json"}));
  EXPECT_EQ(prepared->restore.snapshot_dir, dir_ + "/snapshot");
  EXPECT_FALSE(prepared->restore.needs_source_path_alias);
  EXPECT_EQ(prepared->restore.identity.tap_device, "fe-tap-2");

  Json snapshot = Config("snapshot/config.json");
  EXPECT_EQ(snapshot["disks"][0]["path"], dir_ + "/rootfs.raw");
  EXPECT_EQ(snapshot["disks"][1]["path"], "/data/vm-10/disk");
  EXPECT_EQ(snapshot["payload"]["cmdline"], "console=ttyS0 root=/dev/vda rw init=/data/vm-1/init.sh fe.dir=/data/vm-1");
  EXPECT_EQ(snapshot["serial"]["file"], dir_ + "/logs/serial.log");
  EXPECT_EQ(snapshot["vsock"]["socket"], dir_ + "/vsock.sock");
  EXPECT_EQ(snapshot["vsock"]["cid"], 3);  // the restored guest keeps its CID
  EXPECT_EQ(snapshot["net"][0]["tap"], "fe-tap-2");
  EXPECT_EQ(snapshot["net"][0]["mac"], "02:fe:00:00:00:02");
  Json boot = Config("config.json");
  EXPECT_EQ(boot["vsock"]["cid"], 7);  // a fresh boot takes the fork's own CID
  EXPECT_EQ(boot["payload"]["kernel"], dir_ + "/vmlinux");

  EXPECT_EQ(*ReadFile(Path("snapshot/state.json")), state);
  EXPECT_EQ(*ReadFile(Path("snapshot/memory-ranges")), memory);
  EXPECT_EQ(*ReadFile(Path("manifest.json")), manifest);
  for (const char* runtime : {"api.sock", "cloud-hypervisor.pid", "logs/serial.log"}) {
    EXPECT_FALSE(Exists(Path(runtime))) << runtime;
  }
  EXPECT_TRUE(Exists(Path("logs")));  // kept for the fork's serial log
  EXPECT_TRUE(Exists(Path("rootfs.raw")));
  EXPECT_TRUE(Temporaries().empty());
  EXPECT_TRUE(Temporaries("snapshot").empty());
}

TEST_F(CloudHypervisorPluginTest, PrepareForkOfAStoppedSourceBootsFresh) {
  ASSERT_EQ(::unlink(Path("snapshot/config.json").c_str()), 0);
  Result<PreparedFork> prepared = CloudHypervisorPlugin().PrepareFork(Spec(/*from_snapshot=*/false));
  FE_ASSERT_OK(prepared);
  EXPECT_EQ(prepared->rewritten_files, std::vector<std::string>{"config.json"});
  EXPECT_EQ(prepared->restore.snapshot_dir, "");
  EXPECT_EQ(Config("config.json")["net"][0]["tap"], "fe-tap-2");
}

TEST_F(CloudHypervisorPluginTest, PrepareForkFromAMissingSnapshotIsNotFound) {
  ASSERT_EQ(::unlink(Path("snapshot/config.json").c_str()), 0);
  Result<PreparedFork> prepared = CloudHypervisorPlugin().PrepareFork(Spec());
  EXPECT_EQ(prepared.status().code(), ErrorCode::kNotFound);
  EXPECT_NE(prepared.status().message().find(dir_ + "/snapshot/config.json"), std::string::npos)
      << prepared.status().message();
}

TEST_F(CloudHypervisorPluginTest, AMalformedConfigLeavesEveryFileUntouched) {
  FE_ASSERT_OK(WriteFile(Path("snapshot/config.json"), FixtureText("malformed_config.json")));
  std::string boot = *ReadFile(Path("config.json"));
  Result<PreparedFork> prepared = CloudHypervisorPlugin().PrepareFork(Spec());
  ASSERT_FALSE(prepared.ok());
  EXPECT_EQ(prepared.status().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(prepared.status().message().find("snapshot/config.json: not valid JSON: "), std::string::npos)
      << prepared.status().message();
  EXPECT_EQ(*ReadFile(Path("snapshot/config.json")), FixtureText("malformed_config.json"));
  EXPECT_EQ(*ReadFile(Path("config.json")), boot);
  EXPECT_TRUE(Exists(Path("api.sock")));
  EXPECT_TRUE(Temporaries().empty());
  EXPECT_TRUE(Temporaries("snapshot").empty());
}

TEST_F(CloudHypervisorPluginTest, ARefusedFieldLeavesEveryFileUntouched) {
  Json snapshot = Config("snapshot/config.json");
  snapshot["disks"][1]["readonly"] = false;
  FE_ASSERT_OK(WriteFile(Path("snapshot/config.json"), snapshot.dump()));
  std::string boot = *ReadFile(Path("config.json"));
  Result<PreparedFork> prepared = CloudHypervisorPlugin().PrepareFork(Spec());
  EXPECT_EQ(prepared.status().code(), ErrorCode::kUnsupported);
  EXPECT_NE(prepared.status().message().find("snapshot/config.json: disks[1].path: '/data/vm-10/disk'"),
            std::string::npos)
      << prepared.status().message();
  EXPECT_EQ(*ReadFile(Path("config.json")), boot);  // rewritten only once every file could be
  EXPECT_EQ(*ReadFile(Path("snapshot/config.json")), snapshot.dump());
}

TEST_F(CloudHypervisorPluginTest, SnapshotDirectoryLinkedOutOfTheForkIsNeverReadNorWritten) {
  // What an attacker's guest directory once did to a fork: snapshot/ a link to a directory elsewhere.
  const std::string elsewhere = root_->Sub("elsewhere");
  ASSERT_EQ(::rename(Path("snapshot").c_str(), elsewhere.c_str()), 0);
  ASSERT_EQ(::symlink(elsewhere.c_str(), Path("snapshot").c_str()), 0);
  const std::string before = *ReadFile(elsewhere + "/config.json");
  Result<PreparedFork> prepared = CloudHypervisorPlugin().PrepareFork(Spec());
  EXPECT_FALSE(prepared.ok());
  EXPECT_EQ(*ReadFile(elsewhere + "/config.json"), before) << "a file outside the fork was rewritten";
  EXPECT_TRUE(fe::test::ListDir(elsewhere)->size() == 3u) << "something was written outside the fork";
}

TEST_F(CloudHypervisorPluginTest, PathIntoAGuardedDirectoryOrWithDotDotIsInvalidContentNamingTheField) {
  std::string config = *ReadFile(Path("config.json"));
  const std::string disk = std::string(cloud_hypervisor::test::kSourceDir) + "/rootfs.raw";
  const size_t at = config.find(disk);
  ASSERT_NE(at, std::string::npos);
  FE_ASSERT_OK(WriteFile(Path("config.json"), std::string(config).replace(at, disk.size(), "/data/vm-1/../vm-3/disk")));
  Result<PreparedFork> dotdot = CloudHypervisorPlugin().PrepareFork(Spec());
  EXPECT_EQ(dotdot.status().code(), ErrorCode::kInvalidContent) << dotdot.status().ToString();
  EXPECT_NE(dotdot.status().message().find("disks[0].path"), std::string::npos) << dotdot.status().message();

  FE_ASSERT_OK(WriteFile(Path("config.json"), std::string(config).replace(at, disk.size(), "/data/vm-3/disk")));
  ForkSpec spec = Spec();
  spec.guarded_dirs = {"/data"};
  Result<PreparedFork> neighbour = CloudHypervisorPlugin().PrepareFork(spec);
  EXPECT_EQ(neighbour.status().code(), ErrorCode::kInvalidContent) << neighbour.status().ToString();
  EXPECT_NE(neighbour.status().message().find("points into /data"), std::string::npos) << neighbour.status().message();
}

TEST_F(CloudHypervisorPluginTest, CheckGuestDirectoryRecognisesItAndNamesWhatIsMissing) {
  FE_EXPECT_OK(CloudHypervisorPlugin().CheckGuestDirectory(dir_, /*standby=*/true));
  FE_EXPECT_OK(CloudHypervisorPlugin().CheckGuestDirectory(dir_, /*standby=*/false));
  ASSERT_EQ(::unlink(Path("snapshot/memory-ranges").c_str()), 0);
  Status standby = CloudHypervisorPlugin().CheckGuestDirectory(dir_, /*standby=*/true);
  EXPECT_FALSE(standby.ok());
  EXPECT_NE(standby.message().find(Path("snapshot/memory-ranges")), std::string::npos) << standby.message();
  Status empty = CloudHypervisorPlugin().CheckGuestDirectory(root_->path(), /*standby=*/false);
  EXPECT_FALSE(empty.ok());
  EXPECT_NE(empty.message().find("no boot config"), std::string::npos) << empty.message();
}

TEST_F(CloudHypervisorPluginTest, WithoutAManifestTheDefaultLayoutAndTheConfigsSayWhatIsWhat) {
  ASSERT_EQ(::unlink(Path("manifest.json").c_str()), 0);
  Result<PreparedFork> prepared = CloudHypervisorPlugin().PrepareFork(Spec());
  FE_ASSERT_OK(prepared);
  EXPECT_EQ(prepared->rewritten_files, (std::vector<std::string>{"config.json", "snapshot/config.json"}));
  EXPECT_EQ(prepared->restore.snapshot_dir, dir_ + "/snapshot");
  EXPECT_FALSE(Exists(Path("api.sock")));
  EXPECT_FALSE(Exists(Path("logs/serial.log")));      // the configs' serial file
  EXPECT_TRUE(Exists(Path("cloud-hypervisor.pid")));  // only a manifest names this one
  EXPECT_FALSE(Exists(Path("manifest.json")));
}

TEST_F(CloudHypervisorPluginTest, RefusesAManifestOfAnotherHypervisor) {
  snapshot::Manifest manifest = ForkManifest();
  manifest.hypervisor = "qemu";
  FE_ASSERT_OK(snapshot::WriteManifest(dir_, manifest));
  Result<PreparedFork> prepared = CloudHypervisorPlugin().PrepareFork(Spec());
  EXPECT_EQ(prepared.status().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(prepared.status().message().find("hypervisor: 'qemu'"), std::string::npos) << prepared.status().message();
}

TEST_F(CloudHypervisorPluginTest, RefusesABadSpec) {
  std::vector<std::pair<ForkSpec, std::string>> cases;
  ForkSpec spec = Spec();
  spec.target_identity.tap_device = "a-tap-name-too-long";
  cases.emplace_back(spec, "TAP name");
  spec = Spec();
  spec.target_identity.mac = "02:fe:00:00:00";
  cases.emplace_back(spec, "MAC");
  spec = Spec();
  spec.target_identity.ipv4 = "10.20.1";
  cases.emplace_back(spec, "IPv4");
  spec = Spec();
  spec.source_dir = "data/vm-1";
  cases.emplace_back(spec, "not absolute");
  spec = Spec();
  spec.source_dir = spec.target_dir;
  cases.emplace_back(spec, "both");
  for (const auto& [bad, what] : cases) {
    Result<PreparedFork> prepared = CloudHypervisorPlugin().PrepareFork(bad);
    EXPECT_EQ(prepared.status().code(), ErrorCode::kInvalidArgument) << what;
    EXPECT_NE(prepared.status().message().find(what), std::string::npos) << prepared.status().message();
  }
  EXPECT_EQ(Config("config.json"), Json::parse(FixtureText("boot_config.json")));
}

TEST_F(CloudHypervisorPluginTest, LaunchForRestoreStartsOnlyTheApi) {
  Result<LaunchCommand> command = CloudHypervisorPlugin().Launch(dir_, LaunchMode::kRestore, {});
  FE_ASSERT_OK(command);
  EXPECT_EQ(command->argv, (std::vector<std::string>{"cloud-hypervisor", "--api-socket", dir_ + "/api.sock"}));
  EXPECT_EQ(command->api_socket, dir_ + "/api.sock");
}

TEST_F(CloudHypervisorPluginTest, CannotShareMemoryAndSaysWhy) {
  EXPECT_FALSE(CloudHypervisorPlugin().Capabilities().shared_memory);
  Result<std::string> file = CloudHypervisorPlugin().SnapshotMemoryFile(dir_);
  EXPECT_EQ(file.status().code(), ErrorCode::kUnsupported);
  EXPECT_NE(file.status().message().find("copies"), std::string::npos) << file.status().ToString();
  EXPECT_EQ(CloudHypervisorPlugin().Launch(dir_, LaunchMode::kRestore, MemorySource{"/t/mem"}).status().code(),
            ErrorCode::kUnsupported);
}

TEST_F(CloudHypervisorPluginTest, LaunchForBootCarriesTheBootConfig) {
  FE_ASSERT_OK(CloudHypervisorPlugin().PrepareFork(Spec(/*from_snapshot=*/false)));
  Result<LaunchCommand> command = CloudHypervisorPlugin().Launch(dir_, LaunchMode::kBoot, {});
  FE_ASSERT_OK(command);
  const std::vector<std::string>& argv = command->argv;
  ASSERT_GE(argv.size(), 5u);
  EXPECT_EQ(std::vector<std::string>(argv.begin(), argv.begin() + 3),
            (std::vector<std::string>{"cloud-hypervisor", "--api-socket", dir_ + "/api.sock"}));
  auto after = [&](const std::string& flag) {
    auto it = std::find(argv.begin(), argv.end(), flag);
    return it == argv.end() || it + 1 == argv.end() ? std::string() : *(it + 1);
  };
  EXPECT_EQ(after("--kernel"), dir_ + "/vmlinux");
  EXPECT_EQ(after("--net"), "tap=fe-tap-2,ip=10.20.1.1,mask=255.255.255.252,mac=02:fe:00:00:00:02,num_queues=2");
  EXPECT_EQ(after("--vsock"), "cid=7,socket=" + dir_ + "/vsock.sock");
}

TEST_F(CloudHypervisorPluginTest, LaunchForBootWithoutAConfigIsNotFound) {
  ASSERT_EQ(::unlink(Path("config.json").c_str()), 0);
  Result<LaunchCommand> command = CloudHypervisorPlugin().Launch(dir_, LaunchMode::kBoot, {});
  EXPECT_EQ(command.status().code(), ErrorCode::kNotFound);
  EXPECT_NE(command.status().message().find("no boot config"), std::string::npos) << command.status().message();
}

}  // namespace
}  // namespace fe::hypervisor::cloud_hypervisor
