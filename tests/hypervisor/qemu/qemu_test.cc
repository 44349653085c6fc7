#include "hypervisor/qemu/qemu.h"

#include <algorithm>

#include <gtest/gtest.h>

#include "hypervisor/qemu/qemu_config.h"
#include "tests/hypervisor/qemu/fixtures.h"
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

  Result<LaunchCommand> boot = QemuPlugin().Launch(dir->path(), LaunchMode::kBoot);
  ASSERT_TRUE(boot.ok()) << boot.status().ToString();
  EXPECT_EQ(boot->api_socket, "/data/vm-1/run/qmp.sock");
  EXPECT_EQ(std::count(boot->argv.begin(), boot->argv.end(), "-incoming"), 0);

  Result<LaunchCommand> restore = QemuPlugin().Launch(dir->path(), LaunchMode::kRestore);
  ASSERT_TRUE(restore.ok()) << restore.status().ToString();
  EXPECT_EQ(restore->api_socket, boot->api_socket);
  std::vector<std::string> expected = boot->argv;
  expected.insert(expected.end(), {"-incoming", "defer"});
  EXPECT_EQ(restore->argv, expected);
}

TEST(QemuPluginTest, LaunchWithoutConfigNamesTheFile) {
  Result<fe::test::TempDir> dir = fe::test::TempDir::Create();
  ASSERT_TRUE(dir.ok());
  Result<LaunchCommand> boot = QemuPlugin().Launch(dir->path(), LaunchMode::kBoot);
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
