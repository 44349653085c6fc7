// The dm-thin backend against a real kernel: pools on loop devices, thin volumes holding mounted
// filesystems, snapshots of whole volumes, removal, restart recovery, the fill threshold and rollback
// (failures injected through the device-mapper and filesystem interfaces). Runs directly where the kernel has
// device-mapper and is skipped (with the reason) where it has not; dm_thin_guest_test then runs this
// binary in a QEMU guest with FE_REQUIRE_DM=1, which turns that skip into a failure.
#include "storage/dm_thin/dm_thin_backend.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <memory>
#include <thread>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "base/unique_fd.h"
#include "storage/dm_thin/dm_thin_device.h"
#include "storage/dm_thin/dm_thin_loop.h"
#include "storage/dm_thin/volume_filesystem.h"
#include "tests/support/file_util.h"
#include "tests/support/scratch.h"
#include "tests/support/temp_dir.h"

namespace fe::storage::dm_thin {
namespace {

using test::kMiB;

constexpr uint64_t kIoAlign = 4096;

bool Exists(const std::string& path) {
  struct stat st;
  return ::lstat(path.c_str(), &st) == 0;
}

bool DeviceExists(const std::string& name) {
  Result<DmDeviceInfo> info = DmInfo(name);
  EXPECT_TRUE(info.ok()) << info.status().ToString();
  return info.ok() && info->exists;
}

struct AlignedFree {
  void operator()(char* p) const { std::free(p); }
};
using AlignedBuffer = std::unique_ptr<char, AlignedFree>;

// Pattern bytes written with O_DIRECT|O_SYNC into a file of a volume (made if missing), so they are
// in the thin device, not in a page cache.
Status WritePattern(const std::string& device, uint64_t offset, uint64_t length, uint64_t seed) {
  UniqueFd fd(::open(device.c_str(), O_WRONLY | O_CREAT | O_DIRECT | O_SYNC | O_CLOEXEC, 0644));
  if (!fd) return Status::FromErrno(errno, "open for writing", device);
  AlignedBuffer buffer(static_cast<char*>(std::aligned_alloc(kIoAlign, length)));
  test::FillPattern(buffer.get(), length, seed, offset);
  ssize_t n = ::pwrite(fd.get(), buffer.get(), length, static_cast<off_t>(offset));
  if (n != static_cast<ssize_t>(length)) return Status::FromErrno(n < 0 ? errno : EIO, "write", device);
  return Status::Ok();
}

// Whether the device holds pattern `seed` at [offset, offset+length), read with O_DIRECT.
Result<bool> HoldsPattern(const std::string& device, uint64_t offset, uint64_t length, uint64_t seed) {
  UniqueFd fd(::open(device.c_str(), O_RDONLY | O_DIRECT | O_CLOEXEC));
  if (!fd) return Status::FromErrno(errno, "open for reading", device);
  AlignedBuffer actual(static_cast<char*>(std::aligned_alloc(kIoAlign, length)));
  ssize_t n = ::pread(fd.get(), actual.get(), length, static_cast<off_t>(offset));
  if (n != static_cast<ssize_t>(length)) return Status::FromErrno(n < 0 ? errno : EIO, "read", device);
  std::unique_ptr<char[]> expected(new char[length]);
  test::FillPattern(expected.get(), length, seed, offset);
  return std::memcmp(actual.get(), expected.get(), length) == 0;
}

// Fails the step an operation is at, as the kernel or mke2fs could: device-mapper messages whose
// text starts with `message` ("create_thin", "create_snap"), the activation of device `device`.
class FailingDeviceMapper final : public DeviceMapper {
 public:
  std::string message, device;
  Result<DmDeviceInfo> Info(const std::string& name) const override { return KernelDeviceMapper().Info(name); }
  Status Create(const std::string& name, const std::vector<TableLine>& table) const override {
    if (!device.empty() && name == device) return Status::Io("injected failure at activate");
    return KernelDeviceMapper().Create(name, table);
  }
  Status Remove(const std::string& name) const override { return KernelDeviceMapper().Remove(name); }
  Status Message(const std::string& name, const std::string& text) const override {
    if (!message.empty() && text.rfind(message, 0) == 0) return Status::Io("injected failure at " + message);
    return KernelDeviceMapper().Message(name, text);
  }
  Result<std::vector<TableLine>> TargetStatus(const std::string& name) const override {
    return KernelDeviceMapper().TargetStatus(name);
  }
  Status Suspend(const std::string& name) const override { return KernelDeviceMapper().Suspend(name); }
  Status Resume(const std::string& name) const override { return KernelDeviceMapper().Resume(name); }
};

// Fails formatting or mounting when asked to.
class FailingFilesystem final : public VolumeFilesystem {
 public:
  bool fail_format = false, fail_mount = false;
  Status Format(const std::string& device) const override {
    return fail_format ? Status::Io("injected failure at format") : Ext4Volumes().Format(device);
  }
  Status Mount(const std::string& device, const std::string& dir) const override {
    return fail_mount ? Status::Io("injected failure at mount") : Ext4Volumes().Mount(device, dir);
  }
  Status Unmount(const std::string& dir) const override { return Ext4Volumes().Unmount(dir); }
  Result<bool> Mounted(const std::string& dir) const override { return Ext4Volumes().Mounted(dir); }
};

bool IsMounted(const std::string& dir) {
  Result<bool> mounted = Ext4Volumes().Mounted(dir);
  EXPECT_TRUE(mounted.ok()) << mounted.status().ToString();
  return mounted.ok() && *mounted;
}

#define EXPECT_PATTERN(device, offset, length, seed)                            \
  do {                                                                          \
    Result<bool> fe_holds_ = HoldsPattern(device, offset, length, seed);        \
    ASSERT_TRUE(fe_holds_.ok()) << fe_holds_.status().ToString();               \
    EXPECT_TRUE(*fe_holds_) << (device) << " does not hold pattern " << (seed); \
  } while (0)

class DmThinBackendTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string why;
    if (!DeviceMapperAvailable(&why)) {
      if (std::getenv("FE_REQUIRE_DM") != nullptr) FAIL() << "FE_REQUIRE_DM is set, but " << why;
      GTEST_SKIP() << "no device-mapper in this kernel: " << why
                   << "; dm_thin_guest_test runs these tests in a QEMU guest";
    }
    if (::access("/dev/loop-control", W_OK) != 0) {
      if (std::getenv("FE_REQUIRE_DM") != nullptr) FAIL() << "FE_REQUIRE_DM is set, but /dev/loop-control is missing";
      GTEST_SKIP() << "/dev/loop-control is not usable here: " << std::strerror(errno);
    }
    Result<test::TempDir> dir = test::TempDir::Create();
    ASSERT_TRUE(dir.ok()) << dir.status().ToString();
    dir_.emplace(std::move(*dir));
    static std::atomic<int> counter{0};
    config_.data_root = dir_->Sub("root");
    config_.pool_name = "fe-test-" + std::to_string(::getpid()) + "-" + std::to_string(counter++);
    config_.data_size_bytes = 64 * kMiB;      // 1024 blocks of 64 KiB
    config_.metadata_size_bytes = 64 * kMiB;  // sparse; a new pool uses ~1.6 MiB (2.5%) of it
    config_.volume_size_bytes = 32 * kMiB;
  }

  void TearDown() override {
    if (!dir_) return;
    if (!backend_) {
      Result<DmDeviceInfo> pool = DmInfo(config_.pool_name);
      if (pool.ok() && pool->exists) Open();  // to find and deactivate what a test left
    }
    if (backend_) {
      Status deactivated = backend_->Deactivate();
      EXPECT_TRUE(deactivated.ok()) << deactivated.ToString();
    }
    backend_.reset();
  }

  void Open(DmThinSystem system = {}) {
    backend_.reset();
    Result<std::unique_ptr<DmThinBackend>> backend = DmThinBackend::Open(config_, "test", system);
    ASSERT_TRUE(backend.ok()) << backend.status().ToString();
    backend_ = std::move(*backend);
  }

  std::string DataImage() const { return config_.data_root + "/.dm-thin/" + config_.pool_name + ".data.img"; }
  std::string LedgerPath() const { return config_.data_root + "/.dm-thin/" + config_.pool_name + ".json"; }

  // The ledger's record of `volume` as stored on disk: {id, state}, or null.
  nlohmann::json LedgerRecord(const std::string& volume) const {
    std::ifstream in(LedgerPath());
    nlohmann::json ledger = nlohmann::json::parse(in, nullptr, false);
    if (ledger.is_discarded() || !ledger["volumes"].contains(volume)) return nullptr;
    return ledger["volumes"][volume];
  }
  uint32_t IdOf(const std::string& volume) const { return LedgerRecord(volume).at("id").get<uint32_t>(); }
  // The thin id the ledger hands out next.
  uint32_t LedgerNextId() const {
    std::ifstream in(LedgerPath());
    nlohmann::json ledger = nlohmann::json::parse(in, nullptr, false);
    return ledger.is_discarded() ? 0 : ledger.value("next_id", 0u);
  }

  // Proves the pool holds no thin device `id` (deleting it finds nothing).
  void ExpectIdGone(uint32_t id) {
    Status deleted = DmMessage(config_.pool_name, DeleteMessage(id));
    EXPECT_EQ(deleted.sys_errno(), ENODATA) << "thin id " << id << " still existed: " << deleted.ToString();
  }

  // A file of the volume (where the tests write their data).
  std::string File(const std::string& volume, const std::string& name = "disk.img") const {
    return backend_->Path(volume) + "/" + name;
  }

  // Nothing of `volume` exists: no mount, no device, no node, no directory, no ledger record.
  void ExpectNoTrace(const std::string& volume) {
    EXPECT_FALSE(DeviceExists(config_.pool_name + "-" + volume));
    EXPECT_FALSE(Exists(backend_->DevicePath(volume)));
    EXPECT_FALSE(Exists(backend_->Path(volume)));
    EXPECT_TRUE(LedgerRecord(volume).is_null()) << LedgerRecord(volume).dump();
  }

  std::vector<std::string> List() {
    Result<std::vector<std::string>> volumes = backend_->List();
    EXPECT_TRUE(volumes.ok()) << volumes.status().ToString();
    return volumes.ok() ? *volumes : std::vector<std::string>{};
  }

  std::optional<test::TempDir> dir_;
  DmThinConfig config_;
  // Outlive backend_, which may have been opened with them.
  FailingDeviceMapper failing_device_mapper_;
  FailingFilesystem failing_filesystem_;
  std::unique_ptr<DmThinBackend> backend_;
};

TEST_F(DmThinBackendTest, PoolIsCreatedOnLoopDevicesOverSparseImages) {
  Open();
  EXPECT_EQ(backend_->Name(), "dm-thin");
  EXPECT_TRUE(backend_->Capabilities().constant_time_clone);
  EXPECT_TRUE(backend_->Capabilities().quiesce_origin);
  Result<PoolStatus> health = backend_->PoolHealth();
  ASSERT_TRUE(health.ok()) << health.status().ToString();
  EXPECT_EQ(health->data_total, 1024u);
  EXPECT_EQ(health->data_used, 0u);
  EXPECT_EQ(health->mode, PoolMode::kReadWrite);
  const std::string data_image = DataImage();
  EXPECT_EQ(test::LoopDevicesBackedBy(data_image).size(), 1u);
  EXPECT_EQ(test::LoopDevicesBackedBy(data_image.substr(0, data_image.size() - 8) + "metadata.img").size(), 1u);
  Result<uint64_t> allocated = test::AllocatedBytes(data_image);
  ASSERT_TRUE(allocated.ok());
  EXPECT_LT(*allocated, 64 * kMiB) << "the data image should be sparse";
}

TEST_F(DmThinBackendTest, CreateMakesABlockDeviceWithAnEmptyFilesystemMountedAtThePath) {
  Open();
  FE_ASSERT_OK(backend_->Create("a"));
  struct stat st;
  ASSERT_EQ(::stat(backend_->DevicePath("a").c_str(), &st), 0) << backend_->DevicePath("a");
  EXPECT_TRUE(S_ISBLK(st.st_mode));
  EXPECT_EQ(backend_->DevicePath("a"), "/dev/mapper/" + config_.pool_name + "-a");
  Result<uint64_t> size = BlockDeviceBytes(backend_->DevicePath("a"));
  ASSERT_TRUE(size.ok()) << size.status().ToString();
  EXPECT_EQ(*size, 32 * kMiB);
  EXPECT_TRUE(IsMounted(backend_->Path("a")));
  EXPECT_TRUE(test::ListDir(backend_->Path("a"))->empty()) << "a new volume is an empty directory";
  EXPECT_EQ(List(), std::vector<std::string>{"a"});
  EXPECT_EQ(LedgerRecord("a").at("state"), "ready");
  EXPECT_EQ(backend_->Create("a").code(), ErrorCode::kAlreadyExists);
  // A filesystem costs the pool a few blocks, not the volume's size.
  EXPECT_LT(backend_->PoolHealth()->data_used, 64u) << "blocks of 64 KiB";
}

TEST_F(DmThinBackendTest, ImportSizesTheVolumeForItsFilesAndWritesOnlyTheirData) {
  Open();
  const std::string source = dir_->Sub("guest");
  ASSERT_EQ(::mkdir(source.c_str(), 0755), 0);
  // A disk larger than the configured 32 MiB volume, nearly all holes, and a small memory file.
  FE_ASSERT_OK(test::MakeSparseFile(source + "/disk.img", test::kGiB, {{.offset = 512 * kMiB, .length = kMiB}}, 1));
  FE_ASSERT_OK(test::WritePatternFile(source + "/memory", 2 * kMiB, 2));
  const uint64_t data_before = backend_->PoolHealth()->data_used;

  Result<CloneReport> imported = backend_->Import(source, "a");
  ASSERT_TRUE(imported.ok()) << imported.status().ToString();
  Result<uint64_t> size = BlockDeviceBytes(backend_->DevicePath("a"));
  ASSERT_TRUE(size.ok()) << size.status().ToString();
  EXPECT_EQ(*size, ImportVolumeBytes(config_, test::kGiB + 2 * kMiB));
  EXPECT_GT(*size, test::kGiB + 2 * kMiB) << "room for the disk's holes to fill";
  for (const char* file : {"disk.img", "memory"}) {
    Result<test::Digest> original = test::ContentDigest(source + "/" + file);
    Result<test::Digest> copy = test::ContentDigest(File("a", file));
    ASSERT_TRUE(original.ok() && copy.ok()) << file;
    EXPECT_EQ(*copy, *original) << file;
  }
  EXPECT_LT(*test::AllocatedBytes(File("a", "disk.img")), 4 * kMiB) << "the disk's holes stay holes";
  // 3 MiB of data is 48 blocks; the filesystem's own metadata adds a few dozen.
  EXPECT_LT(backend_->PoolHealth()->data_used, data_before + 48 + 96);
}

TEST_F(DmThinBackendTest, ImportWhoseDataWouldTakeThePoolAboveItsThresholdIsRefusedBeforeAnythingIsMade) {
  config_.fill_threshold = 0.5;  // 512 of the 1024 blocks
  Open();
  const std::string source = dir_->Sub("guest");
  ASSERT_EQ(::mkdir(source.c_str(), 0755), 0);
  FE_ASSERT_OK(test::WritePatternFile(source + "/memory", 40 * kMiB, 1));  // 640 blocks
  const uint32_t next_id = LedgerNextId();

  Result<CloneReport> imported = backend_->Import(source, "a");
  ASSERT_FALSE(imported.ok());
  const Status& status = imported.status();
  EXPECT_EQ(status.code(), ErrorCode::kNoSpace) << status.ToString();
  EXPECT_NE(status.message().find("importing " + source), std::string::npos) << status.message();
  EXPECT_NE(status.message().find("needs 640 data blocks of thin pool " + config_.pool_name), std::string::npos)
      << status.message();
  EXPECT_NE(status.message().find("below its fill threshold 50.0%"), std::string::npos) << status.message();
  ExpectNoTrace("a");
  EXPECT_EQ(LedgerNextId(), next_id) << "no thin id was taken";
  // A smaller import still fits.
  FE_ASSERT_OK(test::WritePatternFile(source + "/memory-small", kMiB, 1));
  ASSERT_EQ(::unlink((source + "/memory").c_str()), 0);
  FE_ASSERT_OK(backend_->Import(source, "a").status());
}

TEST_F(DmThinBackendTest, PoolReportsDataAndMetadataUseInBytesWithTheThreshold) {
  Open();
  FE_ASSERT_OK(backend_->Create("a"));
  FE_ASSERT_OK(WritePattern(File("a"), 0, 8 * kMiB, 1));
  Result<std::optional<PoolUsage>> pool = backend_->Pool();
  ASSERT_TRUE(pool.ok()) << pool.status().ToString();
  ASSERT_TRUE(pool->has_value());
  const PoolUsage& usage = **pool;
  EXPECT_EQ(usage.name, config_.pool_name);
  EXPECT_EQ(usage.data_total_bytes, 64 * kMiB);
  EXPECT_EQ(usage.data_used_bytes, backend_->PoolHealth()->data_used * 64 * test::kKiB);
  EXPECT_GE(usage.data_used_bytes, 8 * kMiB);
  EXPECT_GT(usage.metadata_used_bytes, 0u);
  EXPECT_LE(usage.metadata_used_bytes, usage.metadata_total_bytes);
  EXPECT_LE(usage.metadata_total_bytes, 64 * kMiB);
  EXPECT_EQ(usage.fill_threshold, 0.9);
  EXPECT_EQ(usage.mode, "read-write");
}

TEST_F(DmThinBackendTest, FilesWrittenToTheVolumeReadBackAndCountInItsUsage) {
  Open();
  FE_ASSERT_OK(backend_->Create("a"));
  FE_ASSERT_OK(WritePattern(File("a"), 0, kMiB, 1));
  FE_ASSERT_OK(WritePattern(File("a"), 16 * kMiB, kMiB, 2));
  EXPECT_PATTERN(File("a"), 0, kMiB, 1);
  EXPECT_PATTERN(File("a"), 16 * kMiB, kMiB, 2);
  Result<VolumeUsage> usage = backend_->Usage("a");
  ASSERT_TRUE(usage.ok()) << usage.status().ToString();
  EXPECT_GE(usage->allocated_bytes, 2 * kMiB);
  EXPECT_EQ(usage->logical_bytes, 17 * kMiB) << "the file's size, holes included";
  EXPECT_EQ(usage->method, "thin-pool mapped blocks");
}

TEST_F(DmThinBackendTest, CloneIsASnapshotOfEveryFileThatSharesDataButNotWrites) {
  Open();
  FE_ASSERT_OK(backend_->Create("a"));
  FE_ASSERT_OK(WritePattern(File("a"), 0, 2 * kMiB, 1));
  ASSERT_TRUE(test::WriteFile(File("a", "config.json"), "{\"vcpus\": 2}").ok());
  // A file of the origin stays open, as under a paused guest: the snapshot must not need it closed.
  UniqueFd held(::open(File("a").c_str(), O_RDWR | O_CLOEXEC));
  ASSERT_TRUE(held) << std::strerror(errno);
  const uint64_t used_before = backend_->PoolHealth()->data_used;

  Result<CloneReport> report = backend_->Clone("a", "b");
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_EQ(report->mechanism, "dm-thin-snapshot");
  EXPECT_NE(report->note.find("thin snapshot id " + std::to_string(IdOf("b"))), std::string::npos) << report->note;
  EXPECT_FALSE(DmInfo(config_.pool_name + "-a")->suspended) << "origin left suspended";
  // The config written just before (in the page cache only) is in the snapshot: the suspend froze
  // and flushed the origin's filesystem. The few blocks more are its journal's.
  EXPECT_LE(backend_->PoolHealth()->data_used, used_before + 4) << "a snapshot must not copy data";
  EXPECT_EQ(LedgerRecord("b").at("origin"), IdOf("a"));
  EXPECT_TRUE(IsMounted(backend_->Path("b")));

  EXPECT_PATTERN(File("b"), 0, 2 * kMiB, 1);
  Result<std::string> config = test::ReadFile(File("b", "config.json"));
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_EQ(*config, "{\"vcpus\": 2}");

  FE_ASSERT_OK(WritePattern(File("b"), 0, kMiB, 2));
  EXPECT_PATTERN(File("a"), 0, 2 * kMiB, 1);
  EXPECT_PATTERN(File("b"), 0, kMiB, 2);
  EXPECT_PATTERN(File("b"), kMiB, kMiB, 1);
  FE_ASSERT_OK(WritePattern(File("a"), kMiB, kMiB, 3));
  EXPECT_PATTERN(File("b"), kMiB, kMiB, 1);
  EXPECT_EQ(List(), (std::vector<std::string>{"a", "b"}));
}

TEST_F(DmThinBackendTest, RemoveUnmountsAndDeletesDeviceMountPointAndThinIdButNotClones) {
  Open();
  FE_ASSERT_OK(backend_->Create("a"));
  FE_ASSERT_OK(WritePattern(File("a"), 0, kMiB, 1));
  FE_ASSERT_OK(backend_->Clone("a", "b"));
  const uint32_t id = IdOf("a");

  FE_ASSERT_OK(backend_->Remove("a"));
  ExpectNoTrace("a");
  ExpectIdGone(id);
  EXPECT_PATTERN(File("b"), 0, kMiB, 1);
  EXPECT_EQ(List(), std::vector<std::string>{"b"});
  EXPECT_EQ(backend_->Remove("a").code(), ErrorCode::kNotFound);
  FE_ASSERT_OK(backend_->Remove("b"));
  EXPECT_TRUE(List().empty());
}

TEST_F(DmThinBackendTest, RemoveWhileAFileOrTheDeviceIsInUseIsBusyAndKeepsTheVolumeMounted) {
  Open();
  FE_ASSERT_OK(backend_->Create("a"));
  FE_ASSERT_OK(WritePattern(File("a"), 0, kMiB, 1));
  {
    UniqueFd file(::open(File("a").c_str(), O_RDONLY | O_CLOEXEC));  // a running VM's disk
    ASSERT_TRUE(file);
    Status removed = backend_->Remove("a");
    EXPECT_EQ(removed.code(), ErrorCode::kBusy) << removed.ToString();
    EXPECT_NE(removed.message().find(backend_->Path("a")), std::string::npos) << removed.message();
  }
  {
    UniqueFd device(::open(backend_->DevicePath("a").c_str(), O_RDONLY | O_CLOEXEC));
    ASSERT_TRUE(device);
    Status removed = backend_->Remove("a");
    EXPECT_EQ(removed.code(), ErrorCode::kBusy) << removed.ToString();
    EXPECT_NE(removed.message().find(backend_->DevicePath("a")), std::string::npos) << removed.message();
  }
  EXPECT_TRUE(DeviceExists(config_.pool_name + "-a"));
  EXPECT_TRUE(IsMounted(backend_->Path("a")));
  EXPECT_PATTERN(File("a"), 0, kMiB, 1);
  EXPECT_EQ(LedgerRecord("a").at("state"), "ready");
  EXPECT_TRUE(backend_->Remove("a").ok());
}

TEST_F(DmThinBackendTest, IdsAndFilesPersistAcrossReopeningAndReactivation) {
  Open();
  FE_ASSERT_OK(backend_->Create("a"));
  FE_ASSERT_OK(WritePattern(File("a"), 0, kMiB, 1));
  FE_ASSERT_OK(backend_->Clone("a", "b"));
  const uint32_t id_a = IdOf("a"), id_b = IdOf("b");

  Open();  // a daemon restart: the devices stayed active and mounted
  EXPECT_EQ(List(), (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(IdOf("a"), id_a);
  EXPECT_EQ(IdOf("b"), id_b);
  EXPECT_PATTERN(File("b"), 0, kMiB, 1);

  FE_ASSERT_OK(backend_->Deactivate());  // a host shutdown: everything unmounted and deactivated
  EXPECT_FALSE(IsMounted(backend_->Path("a")));
  EXPECT_FALSE(DeviceExists(config_.pool_name + "-a"));
  EXPECT_FALSE(DeviceExists(config_.pool_name));
  EXPECT_TRUE(test::LoopDevicesBackedBy(DataImage()).empty()) << "loop devices should detach with the pool";
  Open();
  EXPECT_EQ(List(), (std::vector<std::string>{"a", "b"}));
  EXPECT_PATTERN(File("a"), 0, kMiB, 1);
  EXPECT_PATTERN(File("b"), 0, kMiB, 1);
  FE_ASSERT_OK(backend_->Create("c"));
  EXPECT_NE(IdOf("c"), id_a);
  EXPECT_NE(IdOf("c"), id_b);
}

TEST_F(DmThinBackendTest, CloneAboveTheFillThresholdIsRefusedWithAClearError) {
  // Metadata starts ~10% used (the kernel counts its metadata reserve as used), so the threshold
  // sits well above that and the data usage well above the threshold.
  config_.fill_threshold = 0.25;
  Open();
  FE_ASSERT_OK(backend_->Create("a"));
  FE_ASSERT_OK(WritePattern(File("a"), 0, 24 * kMiB, 1));  // 384 of 1024 blocks, and the filesystem's

  Result<CloneReport> clone = backend_->Clone("a", "b");
  ASSERT_FALSE(clone.ok());
  const Status& status = clone.status();
  EXPECT_EQ(status.code(), ErrorCode::kNoSpace) << status.ToString();
  EXPECT_NE(status.message().find("thin pool " + config_.pool_name), std::string::npos) << status.message();
  EXPECT_NE(status.message().find("data usage 3"), std::string::npos) << status.message();
  EXPECT_NE(status.message().find("above the fill threshold 25.0%"), std::string::npos) << status.message();
  EXPECT_NE(status.message().find("refusing to clone " + backend_->Path("a") + " to " + backend_->Path("b")),
            std::string::npos)
      << status.message();
  ExpectNoTrace("b");
  EXPECT_EQ(backend_->Create("c").code(), ErrorCode::kNoSpace);
}

TEST_F(DmThinBackendTest, DeletingFilesInAVolumeGivesTheirBlocksBackToThePool) {
  Open();
  FE_ASSERT_OK(backend_->Create("a"));
  const uint64_t empty = backend_->PoolHealth()->data_used;
  FE_ASSERT_OK(WritePattern(File("a"), 0, 16 * kMiB, 1));
  EXPECT_GE(backend_->PoolHealth()->data_used, empty + 256);
  ASSERT_EQ(::unlink(File("a").c_str()), 0);
  // ext4 discards freed extents after the journal commits them, from a worker; the pool unmaps them
  // from its own: give both a moment.
  ::sync();
  uint64_t used = 0;
  for (int attempt = 0; attempt < 100; ++attempt) {
    used = backend_->PoolHealth()->data_used;
    if (used < empty + 16) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_LT(used, empty + 16) << "mounted with discard: the 16 MiB come back";
}

TEST_F(DmThinBackendTest, FailedCreateOrCloneLeavesNothingHalfMadeAtEveryStep) {
  FailingDeviceMapper& device_mapper = failing_device_mapper_;
  FailingFilesystem& filesystem = failing_filesystem_;
  Open(DmThinSystem{.device_mapper = &device_mapper, .filesystem = &filesystem});
  FE_ASSERT_OK(backend_->Create("a"));
  FE_ASSERT_OK(WritePattern(File("a"), 0, kMiB, 1));

  const std::vector<std::pair<std::string, std::function<void()>>> clone_steps{
      {"create_snap", [&] { device_mapper.message = "create_snap"; }},
      {"activate", [&] { device_mapper.device = config_.pool_name + "-b"; }},
      {"mount", [&] { filesystem.fail_mount = true; }}};
  for (const auto& [step, arm] : clone_steps) {
    SCOPED_TRACE(step);
    const uint32_t next = LedgerNextId();
    arm();
    Result<CloneReport> clone = backend_->Clone("a", "b");
    device_mapper = FailingDeviceMapper();
    filesystem = FailingFilesystem();
    ASSERT_FALSE(clone.ok());
    EXPECT_NE(clone.status().message().find("injected failure at " + step), std::string::npos)
        << clone.status().ToString();
    ExpectNoTrace("b");
    ExpectIdGone(next);
    EXPECT_FALSE(DmInfo(config_.pool_name + "-a")->suspended);
    EXPECT_PATTERN(File("a"), 0, kMiB, 1);
  }
  const std::vector<std::pair<std::string, std::function<void()>>> create_steps{
      {"create_thin", [&] { device_mapper.message = "create_thin"; }},
      {"activate", [&] { device_mapper.device = config_.pool_name + "-c"; }},
      {"format", [&] { filesystem.fail_format = true; }},
      {"mount", [&] { filesystem.fail_mount = true; }}};
  for (const auto& [step, arm] : create_steps) {
    SCOPED_TRACE(step);
    const uint32_t next = LedgerNextId();
    arm();
    Status created = backend_->Create("c");
    device_mapper = FailingDeviceMapper();
    filesystem = FailingFilesystem();
    EXPECT_NE(created.message().find("injected failure at " + step), std::string::npos) << created.ToString();
    ExpectNoTrace("c");
    ExpectIdGone(next);
  }
  FE_ASSERT_OK(backend_->Clone("a", "b"));
  EXPECT_PATTERN(File("b"), 0, kMiB, 1);
}

TEST_F(DmThinBackendTest, CreateNeverDeletesAThinIdItDidNotMake) {
  Open();
  // A thin device the ledger does not know (a lost ledger, another user of the pool) holds the id
  // the ledger hands out next.
  const uint32_t foreign = LedgerNextId();
  FE_ASSERT_OK(DmMessage(config_.pool_name, CreateThinMessage(foreign)));

  Status created = backend_->Create("a");
  EXPECT_EQ(created.sys_errno(), EEXIST) << created.ToString();
  EXPECT_NE(created.message().find("thin id " + std::to_string(foreign) + " already exists"), std::string::npos)
      << created.message();
  ExpectNoTrace("a");
  EXPECT_EQ(DmMessage(config_.pool_name, CreateThinMessage(foreign)).sys_errno(), EEXIST)
      << "the foreign thin device was deleted";
  FE_ASSERT_OK(backend_->Create("a"));
  EXPECT_NE(IdOf("a"), foreign);
}

TEST_F(DmThinBackendTest, ReopenUndoesACloneInterruptedAfterTheMount) {
  Open();
  FE_ASSERT_OK(backend_->Create("a"));
  FE_ASSERT_OK(WritePattern(File("a"), 0, kMiB, 1));
  const uint32_t origin = IdOf("a");
  const uint64_t sectors = LedgerRecord("a").at("sectors").get<uint64_t>();
  backend_.reset();  // the daemon dies in the middle of Clone("a", "b"):
  uint32_t id = 0;
  {
    Result<std::unique_ptr<ThinLedger>> ledger = ThinLedger::Open(LedgerPath());
    ASSERT_TRUE(ledger.ok()) << ledger.status().ToString();
    Result<uint32_t> reserved = (*ledger)->BeginCreate("b", sectors, origin);  // intent recorded
    ASSERT_TRUE(reserved.ok());
    id = *reserved;
    FE_ASSERT_OK(DmMessage(config_.pool_name, CreateSnapMessage(id, origin)));  // snapshot made
    Result<DmDeviceInfo> pool = DmInfo(config_.pool_name);
    FE_ASSERT_OK(DmCreate(config_.pool_name + "-b", {ThinTable(pool->DeviceNumber(), id, sectors)}));
    const std::string mount_point = config_.data_root + "/b";
    ASSERT_EQ(::mkdir(mount_point.c_str(), 0755), 0);
    FE_ASSERT_OK(Ext4Volumes().Mount("/dev/mapper/" + config_.pool_name + "-b", mount_point));  // and mounted
  }
  Open();
  ExpectNoTrace("b");
  ExpectIdGone(id);
  EXPECT_EQ(List(), std::vector<std::string>{"a"});
  FE_ASSERT_OK(backend_->Clone("a", "b"));
  EXPECT_PATTERN(File("b"), 0, kMiB, 1);
}

TEST_F(DmThinBackendTest, ReopenUndoesAnIntentThatNeverReachedTheKernel) {
  Open();
  backend_.reset();
  {
    Result<std::unique_ptr<ThinLedger>> ledger = ThinLedger::Open(LedgerPath());
    ASSERT_TRUE(ledger.ok()) << ledger.status().ToString();
    FE_ASSERT_OK((*ledger)->BeginCreate("b", 2048, std::nullopt));
  }
  Open();
  ExpectNoTrace("b");
  EXPECT_TRUE(List().empty());
}

TEST_F(DmThinBackendTest, ReopenFinishesAnInterruptedRemove) {
  Open();
  FE_ASSERT_OK(backend_->Create("a"));
  const uint32_t id = IdOf("a");
  FE_ASSERT_OK(Ext4Volumes().Unmount(backend_->Path("a")));  // Remove("a") unmounted it,
  FE_ASSERT_OK(DmRemove(config_.pool_name + "-a"));          // deactivated it ...
  backend_.reset();
  {
    Result<std::unique_ptr<ThinLedger>> ledger = ThinLedger::Open(LedgerPath());
    ASSERT_TRUE(ledger.ok()) << ledger.status().ToString();
    FE_ASSERT_OK((*ledger)->SetState("a", ThinState::kRemoving));  // ... recorded it, and died
  }
  Open();
  ExpectNoTrace("a");
  ExpectIdGone(id);
  EXPECT_TRUE(List().empty());
}

TEST_F(DmThinBackendTest, ReopenMountsAReadyVolumeThatIsNotMounted) {
  Open();
  FE_ASSERT_OK(backend_->Create("a"));
  FE_ASSERT_OK(WritePattern(File("a"), 0, kMiB, 1));
  backend_.reset();
  FE_ASSERT_OK(Ext4Volumes().Unmount(config_.data_root + "/a"));  // as after a reboot
  FE_ASSERT_OK(DmRemove(config_.pool_name + "-a"));
  Open();
  EXPECT_TRUE(IsMounted(backend_->Path("a")));
  EXPECT_PATTERN(File("a"), 0, kMiB, 1);
}

TEST_F(DmThinBackendTest, ReopenResumesAVolumeADaemonKilledMidSnapshotLeftSuspended) {
  Open();
  FE_ASSERT_OK(backend_->Create("a"));
  FE_ASSERT_OK(WritePattern(File("a"), 0, kMiB, 1));
  backend_.reset();
  // What a kill -9 between the origin's suspend and resume around create_snap leaves.
  FE_ASSERT_OK(DmSuspend(config_.pool_name + "-a"));
  Open();
  Result<DmDeviceInfo> info = DmInfo(config_.pool_name + "-a");
  FE_ASSERT_OK(info);
  EXPECT_FALSE(info->suspended);
  EXPECT_PATTERN(File("a"), 0, kMiB, 1);
}

TEST_F(DmThinBackendTest, NamesAndParentsAreChecked) {
  Open();
  EXPECT_EQ(backend_->Clone("missing", "b").status().code(), ErrorCode::kNotFound);
  EXPECT_EQ(backend_->Create("../x").code(), ErrorCode::kInvalidArgument);
  Status long_name = backend_->Create(std::string(120, 'v'));
  EXPECT_EQ(long_name.code(), ErrorCode::kInvalidArgument) << long_name.ToString();
  EXPECT_TRUE(List().empty());
}

TEST_F(DmThinBackendTest, CreateNeverAdoptsAStrayDeviceOfTheSameName) {
  Open();
  const std::string stray = config_.pool_name + "-stray";
  FE_ASSERT_OK(DmCreate(stray, {TableLine{.start = 0, .sectors = 2048, .target = "error", .params = ""}}));
  Status created = backend_->Create("stray");
  EXPECT_EQ(created.code(), ErrorCode::kAlreadyExists) << created.ToString();
  EXPECT_NE(created.message().find(stray), std::string::npos) << created.message();
  EXPECT_TRUE(DeviceExists(stray));
  EXPECT_TRUE(LedgerRecord("stray").is_null());
  FE_ASSERT_OK(DmRemove(stray));
}

}  // namespace
}  // namespace fe::storage::dm_thin
