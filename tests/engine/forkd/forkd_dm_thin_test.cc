// forkd on dm-thin for real: every instance's whole guest directory on a thin volume (an ext4
// filesystem mounted at its volume path), forks as thin snapshots, through the API of the built
// forkd. Runs directly where the kernel has device-mapper and skips elsewhere;
// forkd_dm_thin_guest_test runs this binary in a QEMU guest with FE_REQUIRE_DM=1, which turns the
// skip into a failure.
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "base/process.h"
#include "storage/dm_thin/dm_thin_backend.h"
#include "storage/dm_thin/dm_thin_loop.h"
#include "storage/dm_thin/dm_thin_device.h"
#include "storage/dm_thin/dm_thin_status.h"
#include "tests/engine/forkd/forkd_invariants.h"
#include "tests/support/file_util.h"
#include "tests/support/scratch.h"
#include "tests/support/temp_dir.h"
#include "tests/engine/forkd/forkd_test_fixture.h"

namespace fe::engine::forkd::test {
namespace {

using fe::test::kMiB;

class ForkdDmThinTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string why;
    if (!storage::dm_thin::DeviceMapperAvailable(&why)) {
      if (std::getenv("FE_REQUIRE_DM") != nullptr) FAIL() << "FE_REQUIRE_DM is set, but " << why;
      GTEST_SKIP() << "no device-mapper in this kernel (" << why
                   << "); forkd_dm_thin_guest_test runs these tests in a QEMU guest";
    }
    Result<fe::test::TempDir> temp = fe::test::TempDir::Create();
    ASSERT_TRUE(temp.ok()) << temp.status().ToString();
    temp_.emplace(std::move(*temp));
    data_root_ = temp_->Sub("data");
    socket_ = temp_->Sub("forkd.sock");
    guest_ = temp_->Sub("guest");
    FE_ASSERT_OK(MakeGuestDir(guest_, 4 * kMiB));
    static std::atomic<int> counter{0};
    pool_ = "fe-forkd-" + std::to_string(::getpid()) + "-" + std::to_string(counter++);
  }

  // forkd leaves its volumes mounted and its pool active (VMs outlive it): the test takes them down.
  void TearDown() override {
    forkd_.reset();
    if (!temp_) return;
    Result<storage::dm_thin::DmDeviceInfo> pool = storage::dm_thin::DmInfo(pool_);
    if (!pool.ok() || !pool->exists) return;
    storage::dm_thin::DmThinConfig config;
    config.data_root = data_root_ + "/volumes";
    config.pool_name = pool_;
    Result<std::unique_ptr<storage::dm_thin::DmThinBackend>> backend =
        storage::dm_thin::DmThinBackend::Open(config, "test teardown");
    ASSERT_TRUE(backend.ok()) << backend.status().ToString();
    FE_EXPECT_OK((*backend)->Deactivate());
  }

  void StartForkd(const std::string& pool_size = "256M") {
    forkd_ =
        std::make_unique<ForkdProcess>(data_root_, socket_, temp_->Sub("forkd.log"),
                                       std::vector<std::string>{"--thin-pool", pool_, "--thin-pool-size", pool_size,
                                                                "--thin-volume-size", "128M", "--manage-taps", "off"});
    FE_ASSERT_OK(forkd_->Start());
    FE_ASSERT_OK(forkd_->WaitReady());
  }

  ApiClient api() const { return ApiClient(socket_); }
  std::string Volume(const Json& instance) const {
    return data_root_ + "/volumes/" + instance["storage"]["volume"].get<std::string>();
  }

  Json Import(const std::string& name) {
    ApiResponse made =
        api().Post("/v1/instances", Json{{"name", name}, {"hypervisor", "cloud-hypervisor"}, {"import_dir", guest_}});
    EXPECT_EQ(made.status, 201) << made.body << forkd_->Log();
    return made.json;
  }

  std::vector<Json> Fork(const std::string& source, const std::string& name, int count = 1) {
    ApiResponse forked = api().Post("/v1/instances/" + source + "/fork", Json{{"name", name}, {"count", count}});
    EXPECT_EQ(forked.status, 201) << forked.body;
    std::vector<Json> instances;
    for (const Json& fork : forked.json.value("forks", Json::array())) {
      EXPECT_EQ(fork["mechanism"], "dm-thin-snapshot") << fork.dump();
      instances.push_back(fork["instance"]);
    }
    return instances;
  }

  storage::dm_thin::PoolStatus Pool() {
    Result<std::vector<storage::dm_thin::TableLine>> lines = storage::dm_thin::DmStatus(pool_);
    EXPECT_TRUE(lines.ok() && lines->size() == 1) << lines.status().ToString();
    if (!lines.ok() || lines->size() != 1) return {};
    Result<storage::dm_thin::PoolStatus> status = storage::dm_thin::ParsePoolStatus(pool_, (*lines)[0].params);
    EXPECT_TRUE(status.ok()) << status.status().ToString();
    return status.ok() ? *status : storage::dm_thin::PoolStatus{};
  }
  // Data blocks the pool has mapped (64 KiB each).
  uint64_t PoolDataUsed() { return Pool().data_used; }

  // Every file of the guest directory, relative path -> digest, in the volume of `instance`, without
  // the configs a fork rewrites.
  std::map<std::string, fe::test::Digest> GuestData(const Json& instance) {
    Result<std::map<std::string, fe::test::Digest>> digests = TreeDigests(Volume(instance));
    EXPECT_TRUE(digests.ok()) << digests.status().ToString();
    if (!digests.ok()) return {};
    for (const char* rewritten : {"config.json", "snapshot/config.json", "snapshot/state.json"}) {
      digests->erase(rewritten);
    }
    return *digests;
  }

  std::optional<fe::test::TempDir> temp_;
  std::string data_root_, socket_, guest_, pool_;
  std::unique_ptr<ForkdProcess> forkd_;
};

TEST_F(ForkdDmThinTest, ForksAreThinSnapshotsOfTheWholeGuestDirectoryThatNeverShareWrites) {
  StartForkd();
  ApiResponse storage = api().Get("/v1/storage");
  ASSERT_EQ(storage.status, 200);
  EXPECT_EQ(storage.json["backend"], "dm-thin") << storage.body;
  EXPECT_TRUE(storage.json["measured_costs"].is_object()) << "the root's copy is calibrated: " << storage.body;

  const Json web = Import("web");
  ASSERT_TRUE(web.is_object());
  // GET /v1/storage shows the pool's use as the kernel reports it.
  storage = api().Get("/v1/storage");
  ASSERT_EQ(storage.status, 200);
  const Json& pool = storage.json["pool"];
  ASSERT_TRUE(pool.is_object()) << storage.body;
  EXPECT_EQ(pool["name"], pool_);
  EXPECT_EQ(pool["data_bytes"], 256 * kMiB);
  EXPECT_EQ(pool["data_used_bytes"], PoolDataUsed() * 64 * fe::test::kKiB);
  EXPECT_GE(pool["data_used_bytes"].get<uint64_t>(), 4 * kMiB) << "the imported guest's data";
  EXPECT_GT(pool["metadata_used_bytes"].get<uint64_t>(), 0u);
  EXPECT_EQ(pool["mode"], "read-write");
  const std::map<std::string, fe::test::Digest> original = GuestData(web);
  ASSERT_EQ(original.count("rootfs.raw"), 1u);
  ASSERT_EQ(original.count("snapshot/memory-ranges"), 1u);

  const uint64_t before_forks = PoolDataUsed();
  std::vector<Json> forks;
  for (int i = 0; i < 10; ++i) {
    std::vector<Json> made = Fork("web", "single-" + std::to_string(i));
    forks.insert(forks.end(), made.begin(), made.end());
  }
  std::vector<Json> fan = Fork("web", "fan", 8);
  forks.insert(forks.end(), fan.begin(), fan.end());
  ASSERT_EQ(forks.size(), 18u);
  // 18 forks of a guest directory with 4 MiB of data (64 blocks): the pool maps a few metadata
  // blocks per fork (the configs each fork rewrites, the journal), never the data again.
  const uint64_t per_fork = (PoolDataUsed() - before_forks) / 18;
  std::printf("pool blocks (64 KiB) mapped per fork: %llu\n", static_cast<unsigned long long>(per_fork));
  EXPECT_LT(per_fork, 24u) << "blocks of 64 KiB";

  for (const Json& fork : forks) EXPECT_EQ(GuestData(fork), original) << fork["name"];

  // Writes to one fork's disk change neither its parent nor a sibling.
  FE_ASSERT_OK(fe::test::OverwriteRange(Volume(forks[0]) + "/rootfs.raw", 0, 64 * 1024, 99));
  EXPECT_NE(GuestData(forks[0]), original);
  EXPECT_EQ(GuestData(web), original);
  EXPECT_EQ(GuestData(forks[1]), original);

  // A fork of a fork, whose parent is then deleted: the grandchild keeps every byte.
  std::vector<Json> grandchild = Fork("single-1", "grandchild");
  ASSERT_EQ(grandchild.size(), 1u);
  ASSERT_EQ(api().Delete("/v1/instances/single-1").status, 204);
  EXPECT_EQ(GuestData(grandchild[0]), original);
  ExpectOnlyCompleteInstances(api(), data_root_);
}

TEST_F(ForkdDmThinTest, ASnapshotIsAThinSnapshotThatMapsNoDataAgainAndForksAfterItsInstanceIsGone) {
  StartForkd();
  const Json web = Import("web");
  ASSERT_TRUE(web.is_object());
  const std::map<std::string, fe::test::Digest> original = GuestData(web);
  const uint64_t before = PoolDataUsed();
  ApiResponse taken = api().Post("/v1/instances/web/snapshots", Json{{"name", "base"}});
  ASSERT_EQ(taken.status, 201) << taken.body << forkd_->Log();
  EXPECT_EQ(taken.json["mechanism"], "dm-thin-snapshot") << taken.body;
  const std::string snapshot = taken.json["snapshot"]["id"].get<std::string>();
  // Like a fork: a few blocks for what the snapshot rewrites, never the guest's 4 MiB of data again.
  const uint64_t mapped = PoolDataUsed() - before;
  std::printf("pool blocks (64 KiB) mapped by a snapshot: %llu\n", static_cast<unsigned long long>(mapped));
  EXPECT_LT(mapped, 24u) << "blocks of 64 KiB";

  // Writes to the instance after the snapshot do not reach it or its forks.
  FE_ASSERT_OK(fe::test::OverwriteRange(Volume(web) + "/rootfs.raw", 0, 64 * 1024, 7));
  ASSERT_EQ(api().Delete("/v1/instances/web").status, 204);
  ApiResponse forked = api().Post("/v1/snapshots/" + snapshot + "/fork", Json{{"name", "from-base"}, {"count", 2}});
  ASSERT_EQ(forked.status, 201) << forked.body;
  for (const Json& fork : forked.json["forks"]) {
    EXPECT_EQ(fork["mechanism"], "dm-thin-snapshot") << fork.dump();
    EXPECT_EQ(GuestData(fork["instance"]), original) << fork["instance"]["name"];
  }
  EXPECT_EQ(api().Get("/v1/snapshots/" + snapshot).status, 200);
  ExpectOnlyCompleteInstances(api(), data_root_);
  for (const Json& fork : forked.json["forks"]) {
    EXPECT_EQ(api().Delete("/v1/instances/" + fork["instance"]["id"].get<std::string>()).status, 204);
  }
  EXPECT_EQ(api().Delete("/v1/snapshots/" + snapshot).status, 204);
  ExpectOnlyCompleteInstances(api(), data_root_);
}

TEST_F(ForkdDmThinTest, ASampleInstanceGetsAVolumeSizedForItsSparseDiskAndItsForksShareEveryFile) {
  // What `forkctl sample-instance` writes: a 10 GiB sparse disk (64 MiB of data), here 32 MiB of memory.
  const std::string sample = temp_->Sub("sample");
  FE_ASSERT_OK(fe::test::WriteFile(temp_->Sub("vmlinux"), "not a kernel"));
  FE_ASSERT_OK(RunProcessChecked({ForkctlBinary(), "sample-instance", sample, "--disk-size", "10G", "--memory-size",
                                  "32M", "--vcpus", "1", "--kernel", temp_->Sub("vmlinux")}));
  StartForkd();
  ApiResponse made =
      api().Post("/v1/instances", Json{{"name", "sample"}, {"hypervisor", "cloud-hypervisor"}, {"import_dir", sample}});
  ASSERT_EQ(made.status, 201) << made.body << forkd_->Log();
  const std::string volume = made.json["storage"]["volume"].get<std::string>();
  // Its thin volume holds the whole 10 GiB disk (more than --thin-volume-size 128M), and the import
  // wrote only the disk's data.
  Result<uint64_t> size = storage::dm_thin::BlockDeviceBytes("/dev/mapper/" + pool_ + "-" + volume);
  ASSERT_TRUE(size.ok()) << size.status().ToString();
  EXPECT_GT(*size, 10 * fe::test::kGiB);
  EXPECT_LT(PoolDataUsed() * 64 * fe::test::kKiB, 128 * kMiB) << "64 MiB of disk data, 32 of memory, ext4's own";

  const uint64_t before_forks = PoolDataUsed();
  std::vector<Json> forks = Fork("sample", "sample-fork", 3);
  ASSERT_EQ(forks.size(), 3u);
  for (const char* file : {"disk.raw", "snapshot/memory-ranges"}) {
    Result<fe::test::Digest> original = fe::test::ContentDigest(sample + "/" + file);
    ASSERT_TRUE(original.ok()) << original.status().ToString();
    for (const Json& fork : forks) {
      Result<fe::test::Digest> copy = fe::test::ContentDigest(Volume(fork) + "/" + file);
      ASSERT_TRUE(copy.ok()) << copy.status().ToString();
      EXPECT_EQ(*copy, *original) << Volume(fork) << "/" << file;
    }
  }
  EXPECT_LT(PoolDataUsed() - before_forks, 3u * 24) << "forks map a few blocks each, never the 96 MiB of data";
}

TEST_F(ForkdDmThinTest, AKillMinus9DuringFanOutsLeavesWholeInstancesAndEveryDeviceAccountedFor) {
  StartForkd();
  ASSERT_TRUE(Import("web").is_object());
  std::atomic<bool> stop{false};
  std::thread forking([&] {
    for (int i = 0; !stop.load(); ++i)
      api().Post("/v1/instances/web/fork", Json{{"name", "f" + std::to_string(i)}, {"count", 4}});
  });
  // Let some fan-outs finish and one be cut in the middle.
  for (int attempt = 0; attempt < 600; ++attempt) {
    ApiResponse list = api().Get("/v1/instances");
    if (list.status == 200 && list.json["instances"].size() >= 6) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  forkd_->Signal(SIGKILL);
  forkd_->Wait();
  stop = true;
  forking.join();

  StartForkd();
  std::set<std::string> ids = ExpectOnlyCompleteInstances(api(), data_root_);
  EXPECT_EQ((ids.size() - 1) % 4, 0u) << "fan-outs of 4 are whole or gone";
  // Every thin id the pool's ledger holds belongs to a listed instance, whose device is active and
  // whose volume is mounted: the cut fan-out leaked none.
  std::set<std::string> volumes;
  const ApiResponse list = api().Get("/v1/instances");
  for (const Json& instance : list.json["instances"]) {
    const std::string volume = instance["storage"]["volume"];
    volumes.insert(volume);
    Result<storage::dm_thin::DmDeviceInfo> device = storage::dm_thin::DmInfo(pool_ + "-" + volume);
    EXPECT_TRUE(device.ok() && device->exists) << volume;
  }
  Result<std::string> ledger_text = fe::test::ReadFile(data_root_ + "/volumes/.dm-thin/" + pool_ + ".json");
  ASSERT_TRUE(ledger_text.ok()) << ledger_text.status().ToString();
  const Json ledger = Json::parse(*ledger_text);
  std::set<std::string> recorded;
  for (const auto& [volume, record] : ledger["volumes"].items()) recorded.insert(volume);
  EXPECT_EQ(recorded, volumes) << ledger.dump();
}

TEST_F(ForkdDmThinTest, AFullPoolRefusesForksWith507LeavingNothingAndDeletesGiveSpaceBack) {
  StartForkd("48M");
  ASSERT_TRUE(Import("web").is_object());
  std::vector<Json> forks = Fork("web", "writer");
  ASSERT_EQ(forks.size(), 1u);
  // A fork that writes costs the pool real blocks: write until the pool is above its fill threshold
  // (90%), never to its very end (a full pool queues writes).
  const uint64_t empty = PoolDataUsed();
  const std::string fill = Volume(forks[0]) + "/fill.raw";
  FE_ASSERT_OK(fe::test::WriteFile(fill, ""));
  for (uint64_t written = 0; Pool().data_used * 100 < Pool().data_total * 93; written += kMiB) {
    ASSERT_LT(written, 64 * kMiB) << "the pool never filled";
    FE_ASSERT_OK(fe::test::OverwriteRange(fill, written, kMiB, 5));
    ::sync();
  }
  ApiResponse refused = api().Post("/v1/instances/web/fork", Json{{"name", "too-many"}});
  EXPECT_EQ(StatusAndCode(refused), "507 no_space") << refused.body;
  EXPECT_NE(refused.json.value("message", "").find("thin pool " + pool_), std::string::npos) << refused.body;
  EXPECT_EQ(api().Get("/v1/instances/too-many").status, 404);
  ExpectOnlyCompleteInstances(api(), data_root_);

  // Deleting the instance that wrote gives its blocks back; forks work again.
  ASSERT_EQ(api().Delete("/v1/instances/writer").status, 204);
  EXPECT_LE(PoolDataUsed(), empty);
  EXPECT_EQ(Fork("web", "again").size(), 1u);
}

}  // namespace
}  // namespace fe::engine::forkd::test
