// Create with an import, as an attacker would try it: a guest directory whose files or directories
// are links out of it, device nodes, FIFOs, configs naming paths with ".." or into another instance's
// volume, and directories that are not guest directories at all. Each is refused with 422
// invalid_content naming the path, before anything is written or, for what only the clone shows,
// rolled back whole: no instance, metadata, volume or lease remains, and nothing outside was changed.
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "engine/engine.h"
#include "engine/network/network_allocator.h"
#include "tests/engine/engine_fixture.h"

namespace fe::engine {
namespace {

using fe::test::ReadFile;
using fe::test::WriteFile;
using test::EngineFixture;

class CreateImportTest : public fe::test::ScratchTest {
 protected:
  void SetUp() override {
    FE_SCRATCH_DIR(scratch, fe::test::ScratchFs::kXfs);
    scratch_ = scratch;
    FE_ASSERT_OK(fixture_.Init(scratch));
    // What an attacker points at: a file and a directory outside every guest directory.
    sentinel_dir_ = scratch + "/host";
    ASSERT_EQ(::mkdir(sentinel_dir_.c_str(), 0755), 0);
    FE_ASSERT_OK(WriteFile(Sentinel(), "root:secret-hash:0:0\n"));
    FE_ASSERT_OK(WriteFile(sentinel_dir_ + "/config.json", "{\"outside\": true}\n"));
  }
  std::string Sentinel() const { return sentinel_dir_ + "/shadow"; }
  std::string Template() const { return fixture_.template_dir(); }
  Engine& engine() { return fixture_.engine(); }

  Result<Instance> Import(const std::string& dir, const std::string& name = "imported") {
    CreateRequest request;
    request.name = name;
    request.hypervisor = "cloud-hypervisor";
    request.import_dir = dir;
    return engine().Create(request);
  }

  // Refused as invalid content naming `needle`, with nothing made and nothing outside changed.
  void ExpectRefusedLeavingNothing(const Result<Instance>& created, const std::string& needle) {
    ASSERT_FALSE(created.ok());
    EXPECT_EQ(created.status().code(), ErrorCode::kInvalidContent) << created.status().ToString();
    EXPECT_NE(created.status().message().find(needle), std::string::npos) << created.status().message();
    EXPECT_TRUE(engine().List().empty());
    EXPECT_EQ(engine().Storage()->volumes, 0u);
    Result<std::vector<std::string>> dirs = fe::test::ListDir(fixture_.DataRoot() + "/instances");
    FE_ASSERT_OK(dirs);
    EXPECT_TRUE(dirs->empty());
    Result<std::set<std::string>> leases = network::LeaseHoldersOnDisk(fixture_.NetworkDir());
    FE_ASSERT_OK(leases);
    EXPECT_TRUE(leases->empty());
    EXPECT_EQ(*ReadFile(Sentinel()), "root:secret-hash:0:0\n");
    EXPECT_EQ(*ReadFile(sentinel_dir_ + "/config.json"), "{\"outside\": true}\n");
    // The name is free again.
    CreateRequest empty;
    empty.name = "imported";
    empty.hypervisor = "cloud-hypervisor";
    FE_EXPECT_OK(engine().Create(empty));
    FE_EXPECT_OK(engine().Delete("imported"));
  }

  void Replace(const std::string& relative, const std::string& link_target) {
    const std::string path = Template() + "/" + relative;
    ASSERT_EQ(::rename(path.c_str(), (path + ".orig").c_str()), 0);
    ASSERT_EQ(::symlink(link_target.c_str(), path.c_str()), 0);
  }

  std::string scratch_;
  std::string sentinel_dir_;
  EngineFixture fixture_;
};

TEST_F(CreateImportTest, ConfigLinkedToAHostFileIsRefused) {
  Replace("config.json", Sentinel());
  ExpectRefusedLeavingNothing(Import(Template()), Template() + "/config.json");
}

TEST_F(CreateImportTest, SnapshotMemoryLinkedOutIsRefused) {
  Replace("snapshot/memory-ranges", Sentinel());
  ExpectRefusedLeavingNothing(Import(Template()), Template() + "/snapshot/memory-ranges");
}

TEST_F(CreateImportTest, DiskLinkedToAHostBlockDeviceIsRefused) {
  Replace("rootfs.raw", "/dev/vda");
  ExpectRefusedLeavingNothing(Import(Template()), "'/dev/vda'");
}

TEST_F(CreateImportTest, SnapshotDirectoryLinkedElsewhereIsRefusedAndNothingThereIsWritten) {
  Replace("snapshot", sentinel_dir_);
  ExpectRefusedLeavingNothing(Import(Template()), Template() + "/snapshot");
}

TEST_F(CreateImportTest, LinkClimbingOutWithDotDotIsRefused) {
  ASSERT_EQ(::symlink("../host/shadow", (Template() + "/extra").c_str()), 0);
  ExpectRefusedLeavingNothing(Import(Template()), "'../host/shadow'");
}

TEST_F(CreateImportTest, DeviceNodeAndFifoAreRefused) {
  ASSERT_EQ(::mknod((Template() + "/memory/null").c_str(), S_IFCHR | 0600, makedev(1, 3)), 0);
  ExpectRefusedLeavingNothing(Import(Template()), Template() + "/memory/null");
  ASSERT_EQ(::unlink((Template() + "/memory/null").c_str()), 0);
  ASSERT_EQ(::mkfifo((Template() + "/logs/pipe").c_str(), 0600), 0);
  ExpectRefusedLeavingNothing(Import(Template()), Template() + "/logs/pipe");
}

TEST_F(CreateImportTest, DownwardRelativeLinkIsKeptAndTheImportWorks) {
  ASSERT_EQ(::symlink("vmlinux", (Template() + "/kernel").c_str()), 0);
  Result<Instance> created = Import(Template());
  FE_ASSERT_OK(created);
  char target[64] = {};
  const std::string link = engine().backend().Path(created->volume) + "/kernel";
  ASSERT_GT(::readlink(link.c_str(), target, sizeof(target) - 1), 0);
  EXPECT_STREQ(target, "vmlinux");
}

TEST_F(CreateImportTest, DiskPathClimbingWithDotDotIsRefusedAndRolledBack) {
  std::string config = *ReadFile(Template() + "/config.json");
  const std::string disk = Template() + "/rootfs.raw";
  const size_t at = config.find(disk);
  ASSERT_NE(at, std::string::npos) << config;
  config.replace(at, disk.size(), Template() + "/../host/shadow");
  FE_ASSERT_OK(WriteFile(Template() + "/config.json", config));
  ExpectRefusedLeavingNothing(Import(Template()), "/../host/shadow");
}

TEST_F(CreateImportTest, ReadOnlyDiskInsideAnotherInstancesVolumeIsRefused) {
  Result<Instance> neighbour = Import(Template(), "neighbour");
  FE_ASSERT_OK(neighbour);
  const std::string neighbour_disk = engine().backend().Path(neighbour->volume) + "/rootfs.raw";
  std::string config = *ReadFile(Template() + "/config.json");
  // The fixture's read-only disk outside the directory, re-pointed at the neighbour's disk.
  const size_t at = config.find("/data/vm-10/disk");
  ASSERT_NE(at, std::string::npos) << config;
  config.replace(at, std::string("/data/vm-10/disk").size(), neighbour_disk);
  FE_ASSERT_OK(WriteFile(Template() + "/config.json", config));
  Result<Instance> created = Import(Template());
  ASSERT_FALSE(created.ok());
  EXPECT_EQ(created.status().code(), ErrorCode::kInvalidContent) << created.status().ToString();
  EXPECT_NE(created.status().message().find("points into " + fixture_.DataRoot()), std::string::npos)
      << created.status().message();
  EXPECT_EQ(engine().List().size(), 1u);
  EXPECT_EQ(engine().Storage()->volumes, 1u);
}

TEST_F(CreateImportTest, DirectoriesThatAreNoGuestDirectoryAreInvalidContentNamingThePath) {
  // A regular file, a link to a directory, a directory without a VM's files, the host's /dev.
  FE_ASSERT_OK(WriteFile(scratch_ + "/file", "x"));
  ASSERT_EQ(::symlink(sentinel_dir_.c_str(), (scratch_ + "/link").c_str()), 0);
  const std::string empty = scratch_ + "/empty";
  ASSERT_EQ(::mkdir(empty.c_str(), 0755), 0);
  for (const std::string& dir : {scratch_ + "/file", empty, std::string("/dev"), std::string("/proc/self")}) {
    SCOPED_TRACE(dir);
    Result<Instance> created = Import(dir);
    ASSERT_FALSE(created.ok());
    EXPECT_EQ(created.status().code(), ErrorCode::kInvalidContent) << created.status().ToString();
    EXPECT_NE(created.status().message().find("import directory " + dir), std::string::npos)
        << created.status().message();
  }
  EXPECT_TRUE(engine().List().empty());
  EXPECT_EQ(engine().Storage()->volumes, 0u);
  EXPECT_TRUE(fe::test::ListDir(fixture_.DataRoot() + "/instances")->empty());
}

TEST_F(CreateImportTest, LogsThatIsAFileInsteadOfADirectoryIsRefusedBeforeAnythingIsWritten) {
  ASSERT_EQ(::rename((Template() + "/logs").c_str(), (scratch_ + "/logs.dir").c_str()), 0);
  FE_ASSERT_OK(WriteFile(Template() + "/logs", "not a directory\n"));
  ExpectRefusedLeavingNothing(Import(Template()), Template() + "/logs");
}

}  // namespace
}  // namespace fe::engine
