#include "engine/forkctl/sample_instance.h"

#include <sys/stat.h>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "hypervisor/cloud_hypervisor/cloud_hypervisor.h"
#include "hypervisor/cloud_hypervisor/instance_files.h"
#include "snapshot/guest_directory.h"
#include "storage/tree/tree_cloner.h"
#include "tests/support/file_util.h"
#include "tests/support/scratch.h"
#include "tests/support/temp_dir.h"

namespace fe::engine::forkctl {
namespace {

using fe::test::kMiB;
using nlohmann::json;

SampleInstanceOptions SmallSample() {
  SampleInstanceOptions options;
  options.disk_bytes = 256 * kMiB;
  options.memory_bytes = 16 * kMiB;
  options.kernel = "/boot/vmlinuz-test";
  return options;
}

json ReadJson(const std::string& path) {
  Result<std::string> text = fe::test::ReadFile(path);
  EXPECT_TRUE(text.ok()) << text.status().ToString();
  return json::parse(text.ok() ? *text : "null");
}

bool Exists(const std::string& path) {
  struct stat st {};
  return ::lstat(path.c_str(), &st) == 0;
}

hypervisor::NetworkIdentity Identity(int n) {
  return {"fe-tap-" + std::to_string(n),
          "02:fe:00:00:00:0" + std::to_string(n),
          "10.100.0." + std::to_string(n),
          16,
          "10.100.0.1",
          static_cast<uint32_t>(n + 2)};
}

class SampleInstanceTest : public fe::test::ScratchTest {};

TEST_F(SampleInstanceTest, WritesAStandbyCloudHypervisorDirectoryWithSparseDiskAndWholeMemory) {
  Result<fe::test::TempDir> root = fe::test::TempDir::Create();
  FE_ASSERT_OK(root);
  std::string dir = root->Sub("sample");
  Result<SampleInstance> sample = WriteSampleInstance(dir, SmallSample());
  FE_ASSERT_OK(sample);
  EXPECT_EQ(sample->files,
            (std::vector<std::string>{"disk.raw", "config.json", "snapshot/config.json", "snapshot/state.json",
                                      "snapshot/memory-ranges", "logs/serial.log", "manifest.json"}));

  struct stat disk {};
  ASSERT_EQ(::stat((dir + "/disk.raw").c_str(), &disk), 0);
  EXPECT_EQ(static_cast<uint64_t>(disk.st_size), 256 * kMiB);
  EXPECT_LT(static_cast<uint64_t>(disk.st_blocks) * 512, 256 * kMiB / 2) << "the disk image must stay sparse";
  EXPECT_GT(disk.st_blocks, 0);
  Result<uint64_t> memory = fe::test::AllocatedBytes(dir + "/snapshot/memory-ranges");
  FE_ASSERT_OK(memory);
  EXPECT_GE(*memory, 16 * kMiB) << "vm.snapshot writes all of guest memory";

  json snapshot = ReadJson(dir + "/snapshot/config.json");
  EXPECT_EQ(snapshot["disks"][0]["path"], dir + "/disk.raw");
  EXPECT_EQ(snapshot["memory"]["size"], 16 * kMiB);
  EXPECT_EQ(snapshot["payload"]["kernel"], "/boot/vmlinuz-test");
  EXPECT_EQ(ReadJson(dir + "/config.json")["serial"]["file"], dir + "/logs/serial.log");
  EXPECT_TRUE(ReadJson(dir + "/snapshot/state.json").contains("snapshots"));

  Result<hypervisor::cloud_hypervisor::InstanceFiles> files = hypervisor::cloud_hypervisor::FindInstanceFiles(dir);
  FE_ASSERT_OK(files);
  EXPECT_EQ(files->snapshot_dir, "snapshot");
  EXPECT_EQ(files->boot_configs, std::vector<std::string>{"config.json"});
  EXPECT_EQ(files->snapshot_configs, std::vector<std::string>{"snapshot/config.json"});
  ASSERT_TRUE(files->manifest.has_value());
  EXPECT_EQ(files->manifest->PathsWith(snapshot::FileRole::kDisk), std::vector<std::string>{"disk.raw"});
  EXPECT_EQ(files->manifest->PathsWith(snapshot::FileRole::kMemory),
            std::vector<std::string>{"snapshot/memory-ranges"});
}

// The engine's import is a fork from the imported directory (no source identity), and every later
// fork is one from the imported instance: both must be accepted by the plugin on a reflink clone.
TEST_F(SampleInstanceTest, ImportAndForkOfTheSampleArePreparedByTheCloudHypervisorPlugin) {
  FE_SCRATCH_DIR(scratch, fe::test::ScratchFs::kXfs);
  std::string sample_dir = scratch + "/sample";
  FE_ASSERT_OK(WriteSampleInstance(sample_dir, SmallSample()));
  Result<fe::test::TreeSnapshot> before = fe::test::SnapshotTree(sample_dir);
  FE_ASSERT_OK(before);

  const hypervisor::Plugin& plugin = hypervisor::cloud_hypervisor::CloudHypervisorPlugin();
  std::string imported = scratch + "/imported";
  std::string fork = scratch + "/fork";
  storage::tree::CloneOptions reflink;
  reflink.data_mode = storage::tree::DataMode::kReflink;
  Result<storage::CloneReport> import_clone = storage::tree::CloneTree(sample_dir, imported, reflink);
  FE_ASSERT_OK(import_clone);
  Result<hypervisor::PreparedFork> import = plugin.PrepareFork({sample_dir, imported, {}, Identity(2), true, {}});
  FE_ASSERT_OK(import);
  EXPECT_EQ(import->restore.snapshot_dir, imported + "/snapshot");

  FE_ASSERT_OK(storage::tree::CloneTree(imported, fork, reflink));
  Result<hypervisor::PreparedFork> prepared = plugin.PrepareFork({imported, fork, Identity(2), Identity(3), true, {}});
  FE_ASSERT_OK(prepared);
  EXPECT_EQ(prepared->rewritten_files, (std::vector<std::string>{"config.json", "snapshot/config.json"}));
  EXPECT_EQ(prepared->restore.snapshot_dir, fork + "/snapshot");

  json snapshot = ReadJson(fork + "/snapshot/config.json");
  EXPECT_EQ(snapshot["disks"][0]["path"], fork + "/disk.raw");
  EXPECT_EQ(snapshot["serial"]["file"], fork + "/logs/serial.log");
  EXPECT_EQ(snapshot["vsock"]["socket"], fork + "/vsock.sock");
  EXPECT_EQ(snapshot["net"][0]["tap"], "fe-tap-3");
  EXPECT_EQ(snapshot["net"][0]["mac"], "02:fe:00:00:00:03");
  json boot = ReadJson(fork + "/config.json");
  EXPECT_EQ(boot["disks"][0]["path"], fork + "/disk.raw");
  EXPECT_EQ(boot["vsock"]["cid"], 5) << "a boot config gets the fork's CID";
  EXPECT_FALSE(Exists(fork + "/logs/serial.log")) << "the source's serial log is a runtime file";

  Result<uint64_t> shared = fe::test::SharedBytes(fork + "/snapshot/memory-ranges");
  FE_ASSERT_OK(shared);
  EXPECT_EQ(*shared, 16 * kMiB) << "the memory file is shared by reflink, not copied";
  Result<fe::test::TreeSnapshot> after = fe::test::SnapshotTree(sample_dir);
  FE_ASSERT_OK(after);
  EXPECT_EQ(fe::test::DiffSnapshots(*before, *after, {.ctime = true}), "") << "the sample is never written";
}

TEST(WriteSampleInstanceTest, RefusesADirectoryThatIsNotEmpty) {
  Result<fe::test::TempDir> root = fe::test::TempDir::Create();
  FE_ASSERT_OK(root);
  FE_ASSERT_OK(fe::test::WriteFile(root->Sub("keep.txt"), "mine"));
  Result<SampleInstance> sample = WriteSampleInstance(root->path(), SmallSample());
  ASSERT_FALSE(sample.ok());
  EXPECT_EQ(sample.status().code(), ErrorCode::kAlreadyExists);
  EXPECT_NE(sample.status().message().find(root->path()), std::string::npos);
  EXPECT_EQ(*fe::test::ReadFile(root->Sub("keep.txt")), "mine");
}

TEST(WriteSampleInstanceTest, RefusesARelativeDirectoryAndTinySizes) {
  EXPECT_EQ(WriteSampleInstance("relative/dir", SmallSample()).status().code(), ErrorCode::kInvalidArgument);
  SampleInstanceOptions tiny = SmallSample();
  tiny.memory_bytes = 1000;
  Result<fe::test::TempDir> root = fe::test::TempDir::Create();
  FE_ASSERT_OK(root);
  EXPECT_EQ(WriteSampleInstance(root->Sub("x"), tiny).status().code(), ErrorCode::kInvalidArgument);
  EXPECT_FALSE(Exists(root->Sub("x"))) << "sizes are checked before anything is written";
}

TEST(ParseByteSizeTest, AcceptsBinarySuffixesInAnyCase) {
  EXPECT_EQ(*ParseByteSize("4096"), 4096u);
  EXPECT_EQ(*ParseByteSize("512K"), 512u << 10);
  EXPECT_EQ(*ParseByteSize("256M"), 256u << 20);
  EXPECT_EQ(*ParseByteSize("10G"), uint64_t{10} << 30);
  EXPECT_EQ(*ParseByteSize("10gib"), uint64_t{10} << 30);
  EXPECT_EQ(*ParseByteSize("2TB"), uint64_t{2} << 40);
  EXPECT_EQ(*ParseByteSize("7b"), 7u);
}

TEST(ParseByteSizeTest, RejectsOtherTextAndOverflow) {
  for (const char* text : {"", "G", "10X", "1.5G", "-1", "10 G", "99999999999T", "1i"}) {
    Result<uint64_t> size = ParseByteSize(text);
    EXPECT_FALSE(size.ok()) << text;
    EXPECT_EQ(size.status().code(), ErrorCode::kInvalidArgument) << text;
  }
}

}  // namespace
}  // namespace fe::engine::forkctl
