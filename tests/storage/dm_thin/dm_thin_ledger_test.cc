// The ledger: id allocation, persistence across reopening, intent records surviving a "crash",
// atomic writes and refusing a corrupt or locked ledger.
#include "storage/dm_thin/dm_thin_ledger.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>

#include "storage/dm_thin/dm_thin_table.h"
#include "tests/support/file_util.h"
#include "tests/support/temp_dir.h"

namespace fe::storage::dm_thin {
namespace {

using test::ReadFile;
using test::TempDir;
using test::WriteFile;

TEST(DmThinLedgerTest, AllocationSkipsUsedIdsAndWraps) {
  EXPECT_EQ(AllocateThinId(0, {}), 0u);
  EXPECT_EQ(AllocateThinId(3, {3, 4, 6}), 5u);
  EXPECT_EQ(AllocateThinId(kMaxThinId, {kMaxThinId, 0}), 1u);
  EXPECT_EQ(AllocateThinId(kMaxThinId + 10, {}), 0u);
}

class DmThinLedgerFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Result<TempDir> dir = TempDir::Create();
    ASSERT_TRUE(dir.ok()) << dir.status().ToString();
    dir_.emplace(std::move(*dir));
    path_ = dir_->Sub("pool.json");
  }
  std::unique_ptr<ThinLedger> Open() {
    Result<std::unique_ptr<ThinLedger>> ledger = ThinLedger::Open(path_);
    EXPECT_TRUE(ledger.ok()) << ledger.status().ToString();
    return ledger.ok() ? std::move(*ledger) : nullptr;
  }
  std::optional<TempDir> dir_;
  std::string path_;
};

TEST_F(DmThinLedgerFileTest, MissingFileIsEmptyLedger) {
  std::unique_ptr<ThinLedger> ledger = Open();
  ASSERT_NE(ledger, nullptr);
  EXPECT_TRUE(ledger->Records().empty());
}

TEST_F(DmThinLedgerFileTest, IdsAreIncreasingAndPersistAcrossReopen) {
  {
    std::unique_ptr<ThinLedger> ledger = Open();
    ASSERT_NE(ledger, nullptr);
    EXPECT_EQ(ledger->BeginCreate("a", 2048, std::nullopt).value(), 0u);
    ASSERT_TRUE(ledger->SetState("a", ThinState::kReady).ok());
    EXPECT_EQ(ledger->BeginCreate("b", 2048, 0u).value(), 1u);
    ASSERT_TRUE(ledger->SetState("b", ThinState::kReady).ok());
    ASSERT_TRUE(ledger->Erase("a").ok());
  }
  std::unique_ptr<ThinLedger> ledger = Open();
  ASSERT_NE(ledger, nullptr);
  std::map<std::string, ThinRecord> records = ledger->Records();
  ASSERT_EQ(records.size(), 1u);
  EXPECT_EQ(records.at("b"), (ThinRecord{.id = 1, .state = ThinState::kReady, .sectors = 2048, .origin = 0u}));
  // id 0 was freed, but ids keep increasing so a just-deleted id is not handed out again at once.
  EXPECT_EQ(ledger->BeginCreate("c", 2048, std::nullopt).value(), 2u);
}

TEST_F(DmThinLedgerFileTest, IntentSurvivesACrashAndKeepsItsIdReserved) {
  {
    std::unique_ptr<ThinLedger> ledger = Open();
    ASSERT_NE(ledger, nullptr);
    ASSERT_EQ(ledger->BeginCreate("half-made", 4096, 9u).value(), 0u);
    // "crash": the ledger goes away before the creation is committed
  }
  std::unique_ptr<ThinLedger> ledger = Open();
  ASSERT_NE(ledger, nullptr);
  std::optional<ThinRecord> record = ledger->Find("half-made");
  ASSERT_TRUE(record.has_value());
  EXPECT_EQ(record->state, ThinState::kCreating);
  EXPECT_EQ(record->id, 0u);
  EXPECT_EQ(ledger->BeginCreate("other", 4096, std::nullopt).value(), 1u);
  Result<uint32_t> again = ledger->BeginCreate("half-made", 4096, std::nullopt);
  EXPECT_EQ(again.status().code(), ErrorCode::kAlreadyExists);
}

TEST_F(DmThinLedgerFileTest, FileIsJsonWrittenWithoutLeftovers) {
  std::unique_ptr<ThinLedger> ledger = Open();
  ASSERT_NE(ledger, nullptr);
  ASSERT_TRUE(ledger->BeginCreate("vm1", 8, std::nullopt).ok());
  ASSERT_TRUE(ledger->SetState("vm1", ThinState::kRemoving).ok());
  Result<std::string> text = ReadFile(path_);
  ASSERT_TRUE(text.ok()) << text.status().ToString();
  EXPECT_NE(text->find("\"vm1\""), std::string::npos) << *text;
  EXPECT_NE(text->find("\"removing\""), std::string::npos) << *text;
  EXPECT_NE(text->find("\"next_id\": 1"), std::string::npos) << *text;
  const std::string directory = path_.substr(0, path_.rfind('/'));
  const std::string name = path_.substr(path_.rfind('/') + 1);
  for (const auto& entry : std::filesystem::directory_iterator(directory)) {
    EXPECT_NE(entry.path().filename().string().rfind(name + ".tmp", 0), 0u)
        << "temporary file left behind: " << entry.path();
  }
}

TEST_F(DmThinLedgerFileTest, OpenRemovesItsOwnCutShortWritesAndLeavesAnotherLedgersAlone) {
  {
    std::unique_ptr<ThinLedger> ledger = Open();
    ASSERT_NE(ledger, nullptr);
    ASSERT_TRUE(ledger->BeginCreate("vm1", 8, std::nullopt).ok());
  }
  // What a kill -9 inside ReplaceFileDurably leaves: the ledger and a temporary file beside it.
  ASSERT_TRUE(WriteFile(path_ + ".tmp-Zmg3iN", "{\"version\": 1, \"next").ok());
  ASSERT_TRUE(WriteFile(dir_->Sub("other-pool.json.tmp-a1B2c3"), "{}").ok());
  std::unique_ptr<ThinLedger> ledger = Open();
  ASSERT_NE(ledger, nullptr);
  EXPECT_FALSE(std::filesystem::exists(path_ + ".tmp-Zmg3iN"));
  EXPECT_TRUE(std::filesystem::exists(dir_->Sub("other-pool.json.tmp-a1B2c3")))
      << "another pool's ledger shares the directory; its writes are not this one's to remove";
  ASSERT_TRUE(ledger->Find("vm1").has_value());
  EXPECT_EQ(ledger->Find("vm1")->state, ThinState::kCreating);
}

TEST_F(DmThinLedgerFileTest, FailedWriteChangesNothingInMemory) {
  std::unique_ptr<ThinLedger> ledger = Open();
  ASSERT_NE(ledger, nullptr);
  ASSERT_TRUE(ledger->BeginCreate("a", 8, std::nullopt).ok());
  // A directory where the ledger must be renamed into place makes every later write fail.
  ASSERT_EQ(::unlink(path_.c_str()), 0);
  ASSERT_EQ(::mkdir(path_.c_str(), 0700), 0);
  ASSERT_EQ(::mkdir((path_ + "/occupied").c_str(), 0700), 0);
  Result<uint32_t> id = ledger->BeginCreate("b", 8, std::nullopt);
  EXPECT_FALSE(id.ok());
  EXPECT_NE(id.status().message().find(path_), std::string::npos) << id.status().message();
  EXPECT_FALSE(ledger->Find("b").has_value());
  EXPECT_FALSE(ledger->SetState("a", ThinState::kReady).ok());
  EXPECT_EQ(ledger->Find("a")->state, ThinState::kCreating);
}

TEST_F(DmThinLedgerFileTest, SecondOpenIsBusyWhileTheFirstHoldsTheLock) {
  std::unique_ptr<ThinLedger> first = Open();
  ASSERT_NE(first, nullptr);
  Result<std::unique_ptr<ThinLedger>> second = ThinLedger::Open(path_);
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), ErrorCode::kBusy);
  first.reset();
  EXPECT_TRUE(ThinLedger::Open(path_).ok());
}

TEST_F(DmThinLedgerFileTest, CorruptLedgerIsAnErrorNotAnEmptyLedger) {
  for (const char* text : {"{not json", "[]", R"({"version":2,"next_id":0,"volumes":{}})",
                           R"({"version":1,"next_id":0,"volumes":{"a":{"id":1,"state":"bogus","sectors":8}}})",
                           R"({"version":1,"next_id":0,"volumes":{"a":{"id":1,"state":"ready","sectors":8},
                                                                   "b":{"id":1,"state":"ready","sectors":8}}})"}) {
    ASSERT_TRUE(WriteFile(path_, text).ok());
    Result<std::unique_ptr<ThinLedger>> ledger = ThinLedger::Open(path_);
    ASSERT_FALSE(ledger.ok()) << text;
    EXPECT_NE(ledger.status().message().find("corrupt"), std::string::npos) << ledger.status().message();
    EXPECT_NE(ledger.status().message().find(path_), std::string::npos) << ledger.status().message();
  }
}

TEST_F(DmThinLedgerFileTest, SetStateOfUnknownVolumeIsNotFound) {
  std::unique_ptr<ThinLedger> ledger = Open();
  ASSERT_NE(ledger, nullptr);
  EXPECT_EQ(ledger->SetState("ghost", ThinState::kReady).code(), ErrorCode::kNotFound);
  EXPECT_TRUE(ledger->Erase("ghost").ok());
}

}  // namespace
}  // namespace fe::storage::dm_thin
