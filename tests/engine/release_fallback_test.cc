// Engine::ReleaseFromPool when the release journal cannot take the record, on real XFS: the release
// falls back to a synchronous metadata write, so it is in instance.json when the call returns (new
// name, no pool), survives reopening the engine without any journal record, and the instance works.
//
// Both refusals are made honestly. A full journal: a ring of one slot whose only record the
// checkpointer cannot apply, because that instance's metadata directory is immutable (chattr +i:
// creating its staged file fails with EPERM). A broken journal: the journal file lives on an XFS of
// its own (bind-mounted over <data_root>/release.journal) that is shut down (XFS_IOC_GOINGDOWN), so
// its pwrite and fdatasync fail with EIO, as they would on a failing disk.
#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "base/unique_fd.h"
#include "engine/release_journal.h"
#include "storage/loop/loop_filesystem.h"
#include "tests/engine/engine_fixture.h"

namespace fe::engine {
namespace {

using fe::test::ScratchFs;
using test::EngineFixture;

// XFS_IOC_GOINGDOWN and XFS_FSOP_GOING_FLAGS_NOLOGFLUSH from <xfs/xfs_fs.h> (not installed here).
constexpr unsigned long kXfsGoingDown = _IOR('X', 125, uint32_t);
constexpr uint32_t kXfsGoingDownNoLogFlush = 0x2;

Status SetImmutable(const std::string& path, bool immutable) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
  if (fd.get() < 0) return Status::FromErrno(errno, "open", path);
  int flags = 0;
  if (::ioctl(fd.get(), FS_IOC_GETFLAGS, &flags) != 0) return Status::FromErrno(errno, "FS_IOC_GETFLAGS", path);
  flags = immutable ? (flags | FS_IMMUTABLE_FL) : (flags & ~FS_IMMUTABLE_FL);
  if (::ioctl(fd.get(), FS_IOC_SETFLAGS, &flags) != 0) return Status::FromErrno(errno, "FS_IOC_SETFLAGS", path);
  return Status::Ok();
}

Status ShutDownXfs(const std::string& mount_point) {
  UniqueFd fd(::open(mount_point.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (fd.get() < 0) return Status::FromErrno(errno, "open", mount_point);
  uint32_t flags = kXfsGoingDownNoLogFlush;
  if (::ioctl(fd.get(), kXfsGoingDown, &flags) != 0) return Status::FromErrno(errno, "XFS_IOC_GOINGDOWN", mount_point);
  return Status::Ok();
}

class ReleaseFallbackTest : public fe::test::ScratchTest {
 protected:
  void SetUp() override {
    FE_SCRATCH_DIR(scratch, ScratchFs::kXfs);
    FE_ASSERT_OK(fixture_.Init(scratch));
    FE_ASSERT_OK(fixture_.ImportTemplate("tmpl"));
  }
  void TearDown() override {
    fixture_.Close();
    if (!immutable_dir_.empty()) {
      FE_EXPECT_OK(SetImmutable(immutable_dir_, false));
    }
    if (journal_bound_ && ::umount2(JournalPath().c_str(), MNT_DETACH) != 0) {
      ADD_FAILURE() << "umount " << JournalPath() << ": " << std::strerror(errno);
    }
    journal_fs_.reset();
  }

  Engine& engine() { return fixture_.engine(); }
  std::string JournalPath() const { return fixture_.DataRoot() + "/release.journal"; }

  Instance MakeMember(const std::string& name) {
    ForkRequest request;
    request.name = name;
    request.pool = "web";
    Result<std::vector<ForkOutcome>> forked = engine().Fork("tmpl", request);
    EXPECT_TRUE(forked.ok()) << forked.status().ToString();
    return forked.ok() ? forked->front().instance : Instance{};
  }
  // instance.json as it is on disk.
  nlohmann::json MetadataOnDisk(const std::string& id) {
    Result<std::string> text = fe::test::ReadFile(fixture_.MetadataDir(id) + "/instance.json");
    EXPECT_TRUE(text.ok()) << text.status().ToString();
    return nlohmann::json::parse(text.ok() ? *text : "{}", nullptr, /*allow_exceptions=*/false);
  }
  std::vector<std::string> JournalRecords() {
    Result<std::unique_ptr<ReleaseJournal>> journal = ReleaseJournal::Open(JournalPath());
    EXPECT_TRUE(journal.ok()) << journal.status().ToString();
    std::vector<std::string> records;
    if (!journal.ok()) return records;
    for (const ReleaseRecord& record : (*journal)->pending_at_open()) records.push_back(record.id + ":" + record.name);
    return records;
  }
  // The released instance is listed by its new name, outside any pool, and runs.
  void ExpectReleasedAndUsable(const Instance& member, const std::string& name) {
    Result<Instance> released = engine().Get(name);
    ASSERT_TRUE(released.ok()) << released.status().ToString();
    EXPECT_EQ(released->id, member.id);
    EXPECT_TRUE(released->pool.empty());
    EXPECT_EQ(engine().Get(member.name).status().code(), ErrorCode::kNotFound);
    Result<Instance> running = engine().Restore(name);
    ASSERT_TRUE(running.ok()) << running.status().ToString();
    EXPECT_EQ(running->state, InstanceState::kRunning);
    Result<Instance> stopped = engine().Stop(name);
    ASSERT_TRUE(stopped.ok()) << stopped.status().ToString();
    EXPECT_EQ(MetadataOnDisk(member.id).value("state", ""), "Stopped");
  }

  EngineFixture fixture_;
  std::string immutable_dir_;  // made immutable by the test: cleared in TearDown
  std::optional<storage::loop::LoopFilesystem> journal_fs_;
  bool journal_bound_ = false;
};

TEST_F(ReleaseFallbackTest, ReleaseIntoAFullJournalIsWrittenToTheMetadataSynchronously) {
  // A ring of one slot, made before the engine opens it (the engine keeps a journal's capacity).
  fixture_.Close();
  ASSERT_EQ(::unlink(JournalPath().c_str()), 0);
  FE_ASSERT_OK(ReleaseJournal::Open(JournalPath(), /*capacity=*/1));
  FE_ASSERT_OK(fixture_.Open());
  Instance stuck = MakeMember("web-1");
  Instance member = MakeMember("web-2");

  // web-1's release takes the only slot and stays there: its metadata cannot be checkpointed.
  immutable_dir_ = fixture_.MetadataDir(stuck.id);
  FE_ASSERT_OK(SetImmutable(immutable_dir_, true));
  FE_ASSERT_OK(engine().ReleaseFromPool("web-1", "alice"));

  Result<Instance> released = engine().ReleaseFromPool("web-2", "bob");
  FE_ASSERT_OK(released);
  EXPECT_EQ(released->name, "bob");
  EXPECT_TRUE(released->pool.empty());
  // Durable when the call returned: in instance.json already, since the journal could not hold it.
  nlohmann::json on_disk = MetadataOnDisk(member.id);
  EXPECT_EQ(on_disk.value("name", ""), "bob");
  EXPECT_EQ(on_disk.value("pool", ""), "");

  fixture_.Close();
  // The journal holds web-1's record only: bob's release never went through it.
  EXPECT_EQ(JournalRecords(), (std::vector<std::string>{stuck.id + ":alice"}));
  FE_ASSERT_OK(SetImmutable(immutable_dir_, false));
  immutable_dir_.clear();
  FE_ASSERT_OK(fixture_.Open());
  ExpectReleasedAndUsable(member, "bob");
  ExpectReleasedAndUsable(stuck, "alice");  // replayed from the journal at open
}

TEST_F(ReleaseFallbackTest, ReleasesAfterTheJournalBrokeAreWrittenToTheMetadataSynchronously) {
  Instance first = MakeMember("web-1");
  Instance second = MakeMember("web-2");
  // The journal moves to an XFS of its own (a copy of it, bind-mounted over the original).
  fixture_.Close();
  fe::test::ScratchResult host = fe::test::Scratch::HostDir();
  FE_ASSERT_OK(host.status);
  storage::loop::LoopFilesystemOptions options;
  options.type = storage::loop::LoopFilesystemType::kXfs;
  options.image_path = host.path + "/journal-fs.img";
  options.size_bytes = 512ull << 20;
  options.mount_point = host.path + "/journal-fs";
  Result<storage::loop::LoopFilesystem> journal_fs = storage::loop::LoopFilesystem::Open(options);
  FE_ASSERT_OK(journal_fs);
  journal_fs_.emplace(std::move(*journal_fs));
  const std::string moved = options.mount_point + "/release.journal";
  Result<std::string> journal_bytes = fe::test::ReadFile(JournalPath());
  FE_ASSERT_OK(journal_bytes);
  FE_ASSERT_OK(fe::test::WriteFile(moved, *journal_bytes, 0600));
  ASSERT_EQ(::mount(moved.c_str(), JournalPath().c_str(), nullptr, MS_BIND, nullptr), 0) << std::strerror(errno);
  journal_bound_ = true;
  FE_ASSERT_OK(fixture_.Open());

  FE_ASSERT_OK(ShutDownXfs(options.mount_point));  // every journal write fails from now on
  // The first release finds the write failing (the journal breaks); the second finds it broken.
  for (const auto& [member, name] : {std::pair{first, "alice"}, std::pair{second, "bob"}}) {
    Result<Instance> released = engine().ReleaseFromPool(member.name, name);
    FE_ASSERT_OK(released);
    EXPECT_EQ(released->name, name);
    nlohmann::json on_disk = MetadataOnDisk(member.id);
    EXPECT_EQ(on_disk.value("name", ""), name);
    EXPECT_EQ(on_disk.value("pool", ""), "");
  }

  // What is left after the engine closes: the metadata on the healthy filesystem, and the journal
  // as it was before the bind mount (no record of either release).
  fixture_.Close();
  ASSERT_EQ(::umount2(JournalPath().c_str(), 0), 0) << std::strerror(errno);
  journal_bound_ = false;
  FE_EXPECT_OK(journal_fs_->Close());
  journal_fs_.reset();
  EXPECT_TRUE(JournalRecords().empty());
  FE_ASSERT_OK(fixture_.Open());
  ExpectReleasedAndUsable(first, "alice");
  ExpectReleasedAndUsable(second, "bob");
}

}  // namespace
}  // namespace fe::engine
