#include "hypervisor/qemu/qemu.h"

#include <sys/stat.h>

#include <algorithm>

#include <nlohmann/json.hpp>

#include <gtest/gtest.h>

#include "hypervisor/qemu/qemu_config.h"
#include "tests/hypervisor/qemu/fixtures.h"
#include "tests/support/file_util.h"
#include "tests/support/temp_dir.h"

namespace fe::hypervisor::qemu {
namespace {

TEST(QemuPluginTest, KindAndCapabilities) {
  const Plugin& plugin = QemuPlugin();
  EXPECT_EQ(plugin.Kind(), "qemu");
  const PluginCapabilities capabilities = plugin.Capabilities();
  EXPECT_TRUE(capabilities.fork_stopped);
  EXPECT_TRUE(capabilities.fork_standby);
  EXPECT_FALSE(capabilities.snapshot_keeps_vsock_cid);
  EXPECT_FALSE(capabilities.restore_needs_path_alias);
}

TEST(QemuPluginTest, LaunchBuildsArgvFromTheInstanceConfig) {
  Result<fe::test::TempDir> dir = fe::test::TempDir::Create();
  ASSERT_TRUE(dir.ok()) << dir.status().ToString();
  ASSERT_TRUE(qemu::WriteConfig(dir->path(), qemu::test::SourceConfig()).ok());

  Result<LaunchCommand> boot = QemuPlugin().Launch(dir->path(), LaunchMode::kBoot, {});
  ASSERT_TRUE(boot.ok()) << boot.status().ToString();
  EXPECT_EQ(boot->api_socket, "/data/vm-1/run/qmp.sock");
  EXPECT_EQ(std::count(boot->argv.begin(), boot->argv.end(), "-incoming"), 0);

  Result<LaunchCommand> restore = QemuPlugin().Launch(dir->path(), LaunchMode::kRestore, {});
  ASSERT_TRUE(restore.ok()) << restore.status().ToString();
  EXPECT_EQ(restore->api_socket, boot->api_socket);
  std::vector<std::string> expected = boot->argv;
  expected.insert(expected.end(), {"-incoming", "defer"});
  EXPECT_EQ(restore->argv, expected);
}

TEST(QemuPluginTest, SnapshotMemoryFileIsTheMemoryFileWhenTheSnapshotLeftRamThereAndSaysWhyNotOtherwise) {
  Result<fe::test::TempDir> dir = fe::test::TempDir::Create();
  ASSERT_TRUE(dir.ok());
  qemu::Config config = qemu::test::SourceConfig();
  config.memory_file = dir->Sub("mem.bin");
  ASSERT_TRUE(qemu::WriteConfig(dir->path(), config).ok());
  ASSERT_EQ(::mkdir(dir->Sub("snapshot").c_str(), 0755), 0);
  auto describe = [&](bool ignore_shared) {
    nlohmann::json info = {
        {"format", "qemu-migration"}, {"state_file", "vmstate"}, {"ignore_shared_memory", ignore_shared}};
    ASSERT_TRUE(fe::test::WriteFile(dir->Sub("snapshot/qemu-snapshot.json"), info.dump()).ok());
  };
  describe(true);
  Result<std::string> file = QemuPlugin().SnapshotMemoryFile(dir->path());
  ASSERT_TRUE(file.ok()) << file.status().ToString();
  EXPECT_EQ(*file, dir->Sub("mem.bin"));
  EXPECT_TRUE(QemuPlugin().Capabilities().shared_memory);

  // A snapshot whose stream holds the RAM (the VM did not share its memory_file) cannot be mapped.
  describe(false);
  EXPECT_EQ(QemuPlugin().SnapshotMemoryFile(dir->path()).status().code(), ErrorCode::kUnsupported);
  // Nor anonymous RAM; nor a memory file outside the directory.
  describe(true);
  config.memory_file.clear();
  ASSERT_TRUE(qemu::WriteConfig(dir->path(), config).ok());
  Result<std::string> anonymous = QemuPlugin().SnapshotMemoryFile(dir->path());
  EXPECT_EQ(anonymous.status().code(), ErrorCode::kUnsupported);
  EXPECT_NE(anonymous.status().message().find("memory_file"), std::string::npos) << anonymous.status().ToString();
  config.memory_file = "/elsewhere/mem.bin";
  ASSERT_TRUE(qemu::WriteConfig(dir->path(), config).ok());
  EXPECT_EQ(QemuPlugin().SnapshotMemoryFile(dir->path()).status().code(), ErrorCode::kInvalidArgument);
}

TEST(QemuPluginTest, ASharedMemoryLaunchIsARestoreMappingTheFilePrivately) {
  Result<fe::test::TempDir> dir = fe::test::TempDir::Create();
  ASSERT_TRUE(dir.ok());
  ASSERT_TRUE(qemu::WriteConfig(dir->path(), qemu::test::SourceConfig()).ok());
  Result<LaunchCommand> restore =
      QemuPlugin().Launch(dir->path(), LaunchMode::kRestore, MemorySource{"/data/vm-0/mem.bin"});
  ASSERT_TRUE(restore.ok()) << restore.status().ToString();
  EXPECT_NE(std::find(restore->argv.begin(), restore->argv.end(),
                      "memory-backend-file,id=fe-ram,size=512M,mem-path=/data/vm-0/mem.bin,share=off"),
            restore->argv.end());
  EXPECT_EQ(QemuPlugin().Launch(dir->path(), LaunchMode::kBoot, MemorySource{"/data/vm-0/mem.bin"}).status().code(),
            ErrorCode::kInvalidArgument)
      << "a boot starts with fresh RAM";
}

TEST(QemuPluginTest, LaunchWithoutConfigNamesTheFile) {
  Result<fe::test::TempDir> dir = fe::test::TempDir::Create();
  ASSERT_TRUE(dir.ok());
  Result<LaunchCommand> boot = QemuPlugin().Launch(dir->path(), LaunchMode::kBoot, {});
  ASSERT_FALSE(boot.ok());
  EXPECT_EQ(boot.status().code(), ErrorCode::kNotFound);
  EXPECT_NE(boot.status().message().find(dir->Sub("qemu-config.json")), std::string::npos) << boot.status().message();
}

TEST(QemuPluginTest, ConnectWithoutQemuFailsAtTheTimeout) {
  Result<fe::test::TempDir> dir = fe::test::TempDir::Create();
  ASSERT_TRUE(dir.ok());
  Result<std::unique_ptr<VmController>> controller =
      QemuPlugin().Connect(dir->Sub("qmp.sock"), std::chrono::milliseconds(100));
  ASSERT_FALSE(controller.ok());
  EXPECT_NE(controller.status().message().find(dir->Sub("qmp.sock")), std::string::npos)
      << controller.status().message();
}

}  // namespace
}  // namespace fe::hypervisor::qemu
