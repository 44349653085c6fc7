#include "hypervisor/cloud_hypervisor/instance_manifest.h"

#include <sys/stat.h>

#include <gtest/gtest.h>

#include "tests/hypervisor/cloud_hypervisor/fixtures.h"
#include "tests/support/scratch.h"
#include "tests/support/temp_dir.h"

namespace fe::hypervisor::cloud_hypervisor {
namespace {

using snapshot::FileRole;
using Paths = std::vector<std::string>;

// A fixture's text for an instance living in `dir` instead of /data/vm-1 (test setup only).
std::string ForInstanceIn(std::string text, const std::string& dir) {
  const std::string from = std::string(test::kSourceDir) + "/";
  for (size_t at = text.find(from); at != std::string::npos; at = text.find(from, at + dir.size() + 1)) {
    text.replace(at, from.size(), dir + "/");
  }
  return text;
}

class CloudHypervisorInstanceManifestTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Result<fe::test::TempDir> dir = fe::test::TempDir::Create();
    ASSERT_TRUE(dir.ok()) << dir.status().ToString();
    dir_.emplace(std::move(*dir));
    ASSERT_EQ(::mkdir(dir_->Sub("snapshot").c_str(), 0755), 0);
    FE_ASSERT_OK(fe::test::WriteFile(dir_->Sub("config.json"),
                                     ForInstanceIn(test::FixtureText("boot_config.json"), dir_->path())));
  }

  std::optional<fe::test::TempDir> dir_;
};

TEST_F(CloudHypervisorInstanceManifestTest, DescribesAStoppedInstanceFromItsBootConfig) {
  Result<snapshot::Manifest> manifest = DescribeInstance(dir_->path());
  FE_ASSERT_OK(manifest);
  EXPECT_EQ(manifest->hypervisor, "cloud-hypervisor");
  EXPECT_EQ(manifest->snapshot_dir, "");
  EXPECT_EQ(manifest->PathsWith(FileRole::kConfig), Paths{"config.json"});
  EXPECT_EQ(manifest->PathsWith(FileRole::kPayload), (Paths{"vmlinux", "initramfs.cpio.gz"}));
  EXPECT_EQ(manifest->PathsWith(FileRole::kDisk), Paths{"rootfs.raw"});  // /data/vm-10/disk is not ours
  EXPECT_EQ(manifest->PathsWith(FileRole::kRuntime), (Paths{"api.sock", "logs/serial.log", "vsock.sock"}));
}

TEST_F(CloudHypervisorInstanceManifestTest, DescribesAStandbyInstanceWithItsSnapshot) {
  FE_ASSERT_OK(fe::test::WriteFile(dir_->Sub("snapshot/config.json"),
                                   ForInstanceIn(test::FixtureText("snapshot_config.json"), dir_->path())));
  FE_ASSERT_OK(fe::test::WriteFile(dir_->Sub("snapshot/state.json"), "{}"));
  FE_ASSERT_OK(fe::test::WriteFile(dir_->Sub("snapshot/memory-ranges"), "ram"));
  Result<snapshot::Manifest> manifest = DescribeInstance(dir_->path());
  FE_ASSERT_OK(manifest);
  EXPECT_EQ(manifest->snapshot_dir, "snapshot");
  EXPECT_EQ(manifest->PathsWith(FileRole::kConfig), (Paths{"config.json", "snapshot/config.json"}));
  EXPECT_EQ(manifest->PathsWith(FileRole::kDeviceState), Paths{"snapshot/state.json"});
  EXPECT_EQ(manifest->PathsWith(FileRole::kMemory), (Paths{"snapshot/memory-ranges", "memory/mem0"}));
  EXPECT_EQ(manifest->PathsWith(FileRole::kDisk), (Paths{"rootfs.raw", "data.qcow2", "pmem.img"}));
  EXPECT_EQ(manifest->PathsWith(FileRole::kRuntime),
            (Paths{"api.sock", "logs/serial.log", "vsock.sock", "virtiofsd.sock", "console.sock"}));
  // What the engine would write is a valid manifest.
  FE_ASSERT_OK(snapshot::WriteManifest(dir_->path(), *manifest));
  Result<snapshot::Manifest> read = snapshot::ReadManifest(dir_->path());
  FE_ASSERT_OK(read);
  EXPECT_EQ(read->files.size(), manifest->files.size());
}

TEST_F(CloudHypervisorInstanceManifestTest, AMalformedConfigIsNamed) {
  FE_ASSERT_OK(fe::test::WriteFile(dir_->Sub("config.json"), test::FixtureText("malformed_config.json")));
  Result<snapshot::Manifest> manifest = DescribeInstance(dir_->path());
  EXPECT_EQ(manifest.status().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(manifest.status().message().rfind("config.json: not valid JSON", 0), 0u) << manifest.status().message();
}

}  // namespace
}  // namespace fe::hypervisor::cloud_hypervisor
