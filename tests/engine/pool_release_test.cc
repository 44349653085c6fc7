// Engine::ReleaseFromPool through the release journal, on real XFS: a release that reached only the
// journal (a crash before its checkpoint) is applied when the engine opens; the metadata on disk
// catches up in the background; a released member deleted before its checkpoint stays deleted.
#include <sys/stat.h>

#include <chrono>
#include <thread>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "engine/release_journal.h"
#include "tests/engine/engine_fixture.h"

namespace fe::engine {
namespace {

using fe::test::ScratchFs;
using test::EngineFixture;

class PoolReleaseTest : public fe::test::ScratchTest {
 protected:
  void SetUp() override {
    FE_SCRATCH_DIR(scratch, ScratchFs::kXfs);
    FE_ASSERT_OK(fixture_.Init(scratch));
    FE_ASSERT_OK(fixture_.ImportTemplate("tmpl"));
  }
  Instance MakeMember(const std::string& name) {
    ForkRequest request;
    request.name = name;
    request.pool = "web";
    Result<std::vector<ForkOutcome>> forked = fixture_.engine().Fork("tmpl", request);
    EXPECT_TRUE(forked.ok()) << forked.status().ToString();
    return forked.ok() ? forked->front().instance : Instance{};
  }
  // The name instance.json on disk holds.
  std::string NameOnDisk(const std::string& id) {
    Result<std::string> text = fe::test::ReadFile(fixture_.MetadataDir(id) + "/instance.json");
    if (!text.ok()) return text.status().ToString();
    return nlohmann::json::parse(*text).value("name", "");
  }
  std::string JournalPath() const { return fixture_.DataRoot() + "/release.journal"; }
  // What a crash right after the acquire's journal write leaves: the record, old metadata. Closes the
  // engine first.
  void LeaveOnlyInTheJournal(const ReleaseRecord& record) {
    fixture_.Close();
    Result<std::unique_ptr<ReleaseJournal>> journal = ReleaseJournal::Open(JournalPath());
    FE_ASSERT_OK(journal);
    FE_ASSERT_OK((*journal)->Append(record));
  }

  EngineFixture fixture_;
};

TEST_F(PoolReleaseTest, ReleaseOnlyInTheJournalIsAppliedWhenTheEngineOpens) {
  Instance member = MakeMember("web-1");
  ReleaseRecord record;
  record.id = member.id;
  record.name = "carol";
  ASSERT_NO_FATAL_FAILURE(LeaveOnlyInTheJournal(record));
  EXPECT_EQ(NameOnDisk(member.id), "web-1");
  FE_ASSERT_OK(fixture_.Open());
  Result<Instance> released = fixture_.engine().Get("carol");
  FE_ASSERT_OK(released);
  EXPECT_EQ(released->id, member.id);
  EXPECT_TRUE(released->pool.empty());
  EXPECT_EQ(fixture_.engine().Get("web-1").status().code(), ErrorCode::kNotFound);
  EXPECT_EQ(NameOnDisk(member.id), "carol");
  bool reported = false;
  for (const std::string& action : fixture_.engine().recovery().actions) {
    reported |= action.find("journaled release of " + member.id) != std::string::npos;
  }
  EXPECT_TRUE(reported);
  fixture_.Close();
  Result<std::unique_ptr<ReleaseJournal>> journal = ReleaseJournal::Open(JournalPath());
  FE_ASSERT_OK(journal);
  EXPECT_TRUE((*journal)->pending_at_open().empty()) << "the applied release was not checkpointed";
}

TEST_F(PoolReleaseTest, TheAcquiresLifecyclePolicyOnlyInTheJournalIsAppliedWhenTheEngineOpens) {
  Instance member = MakeMember("web-1");
  ReleaseRecord record;
  record.id = member.id;
  record.name = "dave";
  record.expires_at = "2030-01-01T00:00:00Z";
  record.idle_standby_s = 600;
  ASSERT_NO_FATAL_FAILURE(LeaveOnlyInTheJournal(record));
  FE_ASSERT_OK(fixture_.Open());
  Result<Instance> released = fixture_.engine().Get("dave");
  FE_ASSERT_OK(released);
  EXPECT_EQ(released->lifecycle.expires_at, "2030-01-01T00:00:00Z");
  EXPECT_EQ(released->lifecycle.idle_standby_s, 600);
  fixture_.Close();
  FE_ASSERT_OK(fixture_.Open());
  Result<Instance> reopened = fixture_.engine().Get("dave");
  FE_ASSERT_OK(reopened);
  EXPECT_EQ(reopened->lifecycle.expires_at, "2030-01-01T00:00:00Z") << "written to its metadata, not only replayed";
}

TEST_F(PoolReleaseTest, MetadataOnDiskCatchesUpWithTheReleaseWithoutARestart) {
  Instance member = MakeMember("web-1");
  FE_ASSERT_OK(fixture_.engine().ReleaseFromPool("web-1", "carol"));
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (NameOnDisk(member.id) != "carol" && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(NameOnDisk(member.id), "carol");
  fixture_.Close();
  Result<std::unique_ptr<ReleaseJournal>> journal = ReleaseJournal::Open(JournalPath());
  FE_ASSERT_OK(journal);
  EXPECT_TRUE((*journal)->pending_at_open().empty());
}

TEST_F(PoolReleaseTest, ManyReleasesAreAllDurableAfterClosing) {
  std::vector<Instance> members;
  for (int i = 0; i < 12; ++i) members.push_back(MakeMember("web-" + std::to_string(i)));
  std::vector<std::thread> acquirers;
  for (int i = 0; i < 12; ++i) {
    acquirers.emplace_back([this, i] {
      Result<Instance> released =
          fixture_.engine().ReleaseFromPool("web-" + std::to_string(i), "user-" + std::to_string(i));
      EXPECT_TRUE(released.ok()) << released.status().ToString();
    });
  }
  for (std::thread& thread : acquirers) thread.join();
  fixture_.Close();
  for (int i = 0; i < 12; ++i) EXPECT_EQ(NameOnDisk(members[i].id), "user-" + std::to_string(i));
  FE_ASSERT_OK(fixture_.Open());
  for (int i = 0; i < 12; ++i) {
    Result<Instance> instance = fixture_.engine().Get("user-" + std::to_string(i));
    FE_ASSERT_OK(instance);
    EXPECT_TRUE(instance->pool.empty());
  }
}

TEST_F(PoolReleaseTest, ReleasedMemberDeletedBeforeItsCheckpointStaysDeleted) {
  Instance member = MakeMember("web-1");
  FE_ASSERT_OK(fixture_.engine().ReleaseFromPool("web-1", "carol"));
  FE_ASSERT_OK(fixture_.engine().Delete("carol"));
  FE_ASSERT_OK(fixture_.Reopen());
  EXPECT_EQ(fixture_.engine().Get("carol").status().code(), ErrorCode::kNotFound);
  EXPECT_EQ(fixture_.engine().Get(member.id).status().code(), ErrorCode::kNotFound);
  struct stat info {};
  EXPECT_NE(::lstat(fixture_.MetadataDir(member.id).c_str(), &info), 0) << "its metadata directory is back";
}

}  // namespace
}  // namespace fe::engine
