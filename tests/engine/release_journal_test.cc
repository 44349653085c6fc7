// The release journal on a real file: records survive reopening in order, the checkpoint frees
// applied ones, concurrent appends are each durable with distinct seqs (group commit), a full ring
// refuses and then wraps, a torn record ends replay (and what followed it is never replayed later),
// and a file that is not a journal is refused by name.
#include "engine/release_journal.h"

#include <fcntl.h>
#include <unistd.h>

#include <set>
#include <thread>

#include <gtest/gtest.h>

#include "tests/support/file_util.h"
#include "tests/support/scratch.h"
#include "tests/support/temp_dir.h"

namespace fe::engine {
namespace {

constexpr off_t kFirstSlot = 4096;
constexpr off_t kSlot = 256;

ReleaseRecord Release(std::string id, std::string name) {
  ReleaseRecord record;
  record.id = std::move(id);
  record.name = std::move(name);
  return record;
}

class ReleaseJournalTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Result<fe::test::TempDir> dir = fe::test::TempDir::Create();
    FE_ASSERT_OK(dir);
    dir_ = std::make_unique<fe::test::TempDir>(std::move(*dir));
    path_ = dir_->path() + "/release.journal";
  }
  std::unique_ptr<ReleaseJournal> OpenJournal(uint32_t capacity = ReleaseJournal::kDefaultCapacity) {
    Result<std::unique_ptr<ReleaseJournal>> journal = ReleaseJournal::Open(path_, capacity);
    EXPECT_TRUE(journal.ok()) << journal.status().ToString();
    return journal.ok() ? std::move(*journal) : nullptr;
  }
  std::vector<std::string> PendingNames(const ReleaseJournal& journal) {
    std::vector<std::string> names;
    for (const ReleaseRecord& record : journal.pending_at_open()) names.push_back(record.id + ":" + record.name);
    return names;
  }
  void Overwrite(off_t offset, const std::string& bytes) {
    int fd = ::open(path_.c_str(), O_WRONLY);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::pwrite(fd, bytes.data(), bytes.size(), offset), static_cast<ssize_t>(bytes.size()));
    ::close(fd);
  }

  std::unique_ptr<fe::test::TempDir> dir_;
  std::string path_;
};

TEST_F(ReleaseJournalTest, AppendedReleasesAreFoundAtReopenInOrder) {
  {
    std::unique_ptr<ReleaseJournal> journal = OpenJournal();
    ASSERT_NE(journal, nullptr);
    EXPECT_TRUE(journal->pending_at_open().empty());
    for (const char* name : {"a", "b", "c"}) {
      Result<uint64_t> seq = journal->Append(Release(std::string("id-") + name, name));
      FE_ASSERT_OK(seq);
    }
  }
  std::unique_ptr<ReleaseJournal> reopened = OpenJournal();
  ASSERT_NE(reopened, nullptr);
  EXPECT_EQ(PendingNames(*reopened), (std::vector<std::string>{"id-a:a", "id-b:b", "id-c:c"}));
  EXPECT_EQ(reopened->pending_at_open().front().seq, 1u);
  EXPECT_EQ(reopened->unapplied(), 3u);
  Result<uint64_t> next = reopened->Append(Release("id-d", "d"));
  FE_ASSERT_OK(next);
  EXPECT_EQ(*next, 4u);
}

TEST_F(ReleaseJournalTest, CheckpointMovesOnlyPastAContiguousRunOfAppliedRecords) {
  std::unique_ptr<ReleaseJournal> journal = OpenJournal();
  for (const char* name : {"a", "b", "c"}) FE_ASSERT_OK(journal->Append(Release(name, name)));
  journal->MarkApplied(1);
  journal->MarkApplied(3);
  FE_ASSERT_OK(journal->Checkpoint());
  EXPECT_EQ(journal->checkpoint(), 1u);  // 2 is still unapplied, so 3 cannot be forgotten yet
  journal.reset();
  journal = OpenJournal();
  EXPECT_EQ(PendingNames(*journal), (std::vector<std::string>{"b:b", "c:c"}));
  journal->MarkApplied(2);
  journal->MarkApplied(3);
  FE_ASSERT_OK(journal->Checkpoint());
  EXPECT_EQ(journal->checkpoint(), 3u);
  journal.reset();
  EXPECT_TRUE(OpenJournal()->pending_at_open().empty());
}

TEST_F(ReleaseJournalTest, ConcurrentAppendsGetDistinctSeqsAndAreAllDurable) {
  constexpr int kThreads = 8;
  constexpr int kEach = 100;
  std::vector<std::vector<uint64_t>> seqs(kThreads);
  {
    std::unique_ptr<ReleaseJournal> journal = OpenJournal();
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        for (int i = 0; i < kEach; ++i) {
          Result<uint64_t> seq = journal->Append(Release("id-" + std::to_string(t) + "-" + std::to_string(i), "n"));
          ASSERT_TRUE(seq.ok()) << seq.status().ToString();
          seqs[t].push_back(*seq);
        }
      });
    }
    for (std::thread& thread : threads) thread.join();
  }
  std::set<uint64_t> distinct;
  for (const auto& list : seqs) distinct.insert(list.begin(), list.end());
  EXPECT_EQ(distinct.size(), static_cast<size_t>(kThreads * kEach));
  std::unique_ptr<ReleaseJournal> reopened = OpenJournal();
  ASSERT_EQ(reopened->pending_at_open().size(), static_cast<size_t>(kThreads * kEach));
  std::set<std::string> ids;
  for (size_t i = 0; i < reopened->pending_at_open().size(); ++i) {
    EXPECT_EQ(reopened->pending_at_open()[i].seq, i + 1);
    ids.insert(reopened->pending_at_open()[i].id);
  }
  EXPECT_EQ(ids.size(), static_cast<size_t>(kThreads * kEach));
}

TEST_F(ReleaseJournalTest, FullJournalRefusesWithNoSpaceThenWrapsAroundAfterACheckpoint) {
  std::unique_ptr<ReleaseJournal> journal = OpenJournal(/*capacity=*/4);
  for (int i = 1; i <= 4; ++i) FE_ASSERT_OK(journal->Append(Release("id" + std::to_string(i), "n")));
  Result<uint64_t> refused = journal->Append(Release("id5", "n"));
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), ErrorCode::kNoSpace);
  EXPECT_NE(refused.status().message().find(path_), std::string::npos) << refused.status().message();
  for (uint64_t seq = 1; seq <= 3; ++seq) journal->MarkApplied(seq);
  FE_ASSERT_OK(journal->Checkpoint());
  for (int i = 5; i <= 7; ++i)
    FE_ASSERT_OK(journal->Append(Release("id" + std::to_string(i), "n")));  // slots 1..3 reused
  journal.reset();
  std::unique_ptr<ReleaseJournal> reopened = OpenJournal(/*capacity=*/4);
  EXPECT_EQ(PendingNames(*reopened), (std::vector<std::string>{"id4:n", "id5:n", "id6:n", "id7:n"}));
}

TEST_F(ReleaseJournalTest, TornRecordEndsReplayAndWhatFollowedItIsNeverReplayedLater) {
  {
    std::unique_ptr<ReleaseJournal> journal = OpenJournal();
    for (const char* name : {"a", "b", "c"}) FE_ASSERT_OK(journal->Append(Release(name, name)));
  }
  // Record 2 (slot 2) loses its payload's last bytes, as a write cut short would leave it.
  Overwrite(kFirstSlot + 2 * kSlot + 30, std::string(8, '\0'));
  {
    std::unique_ptr<ReleaseJournal> journal = OpenJournal();
    EXPECT_EQ(PendingNames(*journal), (std::vector<std::string>{"a:a"}));
    Result<uint64_t> seq = journal->Append(Release("d", "d"));
    FE_ASSERT_OK(seq);
    EXPECT_EQ(*seq, 2u);
  }
  // Old record 3 is intact on disk but was never part of the acknowledged history: it must not join
  // the new record 2's run.
  EXPECT_EQ(PendingNames(*OpenJournal()), (std::vector<std::string>{"a:a", "d:d"}));
}

TEST_F(ReleaseJournalTest, FileThatIsNotAJournalIsRefusedNamingIt) {
  FE_ASSERT_OK(fe::test::WriteFile(path_, std::string(8192, 'x')));
  Result<std::unique_ptr<ReleaseJournal>> journal = ReleaseJournal::Open(path_);
  ASSERT_FALSE(journal.ok());
  EXPECT_EQ(journal.status().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(journal.status().message().find(path_), std::string::npos) << journal.status().message();
}

TEST_F(ReleaseJournalTest, TheAcquiresPolicyIsFoundAtReopenAndAReleaseWithoutOneHasNone) {
  {
    std::unique_ptr<ReleaseJournal> journal = OpenJournal();
    ASSERT_NE(journal, nullptr);
    ReleaseRecord with_policy = Release("i-1", "kept-an-hour");
    with_policy.expires_at = "2026-12-07T17:00:00Z";
    with_policy.idle_standby_s = 300;
    FE_ASSERT_OK(journal->Append(with_policy));
    FE_ASSERT_OK(journal->Append(Release("i-2", "plain")));
  }
  std::unique_ptr<ReleaseJournal> reopened = OpenJournal();
  ASSERT_NE(reopened, nullptr);
  ASSERT_EQ(reopened->pending_at_open().size(), 2u);
  EXPECT_EQ(reopened->pending_at_open()[0].expires_at, "2026-12-07T17:00:00Z");
  EXPECT_EQ(reopened->pending_at_open()[0].idle_standby_s, 300);
  EXPECT_EQ(reopened->pending_at_open()[1].expires_at, "");
  EXPECT_EQ(reopened->pending_at_open()[1].idle_standby_s, 0);
}

TEST_F(ReleaseJournalTest, ReleaseTooLargeForASlotIsRefused) {
  std::unique_ptr<ReleaseJournal> journal = OpenJournal();
  Result<uint64_t> seq = journal->Append(Release("id", std::string(300, 'n')));
  ASSERT_FALSE(seq.ok());
  EXPECT_EQ(seq.status().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(journal->unapplied(), 0u);
}

}  // namespace
}  // namespace fe::engine
