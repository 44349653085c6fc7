// DeferredSync: the scope is per thread and nests; writes inside it land whole; Sync reports the
// first failure naming its path.
#include "base/deferred_sync.h"

#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "base/atomic_file.h"
#include "tests/support/file_util.h"
#include "tests/support/scratch.h"
#include "tests/support/temp_dir.h"

namespace fe::snapshot {
namespace {

TEST(DeferredSyncTest, ScopeIsCurrentOnItsThreadOnlyAndNests) {
  EXPECT_EQ(DeferredSync::Current(), nullptr);
  {
    DeferredSync outer;
    EXPECT_EQ(DeferredSync::Current(), &outer);
    std::thread other([] { EXPECT_EQ(DeferredSync::Current(), nullptr); });
    other.join();
    {
      DeferredSync inner;
      EXPECT_EQ(DeferredSync::Current(), &inner);
    }
    EXPECT_EQ(DeferredSync::Current(), &outer);
  }
  EXPECT_EQ(DeferredSync::Current(), nullptr);
}

TEST(DeferredSyncTest, ReplacementsInsideTheScopeLandWholeAndSyncSucceeds) {
  Result<fe::test::TempDir> dir = fe::test::TempDir::Create();
  FE_ASSERT_OK(dir);
  const std::string a = dir->Sub("a.json"), b = dir->Sub("b.json");
  FE_ASSERT_OK(fe::test::WriteFile(a, "old"));
  DeferredSync deferred;
  FE_ASSERT_OK(ReplaceFileAtomically(a, "{\"new\": 1}"));
  FE_ASSERT_OK(ReplaceFileDurably(b, "{\"durable\": 2}"));
  FE_ASSERT_OK(deferred.Sync());
  Result<std::string> read_a = fe::test::ReadFile(a);
  Result<std::string> read_b = fe::test::ReadFile(b);
  FE_ASSERT_OK(read_a);
  FE_ASSERT_OK(read_b);
  EXPECT_EQ(*read_a, "{\"new\": 1}");
  EXPECT_EQ(*read_b, "{\"durable\": 2}");
  EXPECT_EQ(fe::test::ListDir(dir->path())->size(), 2u) << "a temporary file was left behind";
}

TEST(DeferredSyncTest, SyncReportsANoteThatFailedNamingThePath) {
  DeferredSync deferred;
  deferred.Note("/nonexistent/forkengine-deferred");
  Status synced = deferred.Sync();
  ASSERT_FALSE(synced.ok());
  EXPECT_EQ(synced.code(), ErrorCode::kNotFound);
  EXPECT_NE(synced.message().find("/nonexistent/forkengine-deferred"), std::string::npos) << synced.ToString();
}

TEST(DeferredSyncTest, AGroupAdoptsWhatScopesOnOtherThreadsNotedAndSyncsEachFilesystemOnce) {
  Result<fe::test::TempDir> dir = fe::test::TempDir::Create();
  FE_ASSERT_OK(dir);
  std::vector<std::string> synced;
  DeferredSync group([&](int fd) {
    synced.push_back(std::to_string(fd));
    return 0;
  });
  for (int worker = 0; worker < 2; ++worker) {
    std::thread([&] {
      DeferredSync scope([](int) -> int {
        ADD_FAILURE() << "a worker's scope is never synced itself";
        return 0;
      });
      FE_EXPECT_OK(ReplaceFileAtomically(dir->Sub(std::string("w").append(std::to_string(worker))), "x"));
      group.Adopt(scope);
    }).join();
  }
  FE_ASSERT_OK(group.Sync());
  EXPECT_EQ(synced.size(), 1u) << "both workers wrote to one filesystem";
}

TEST(DeferredSyncTest, AnAdoptedScopesFailedNoteFailsTheGroupsSync) {
  DeferredSync group;
  std::thread([&] {
    DeferredSync scope;
    scope.Note("/nonexistent/forkengine-adopted");
    group.Adopt(scope);
  }).join();
  Status synced = group.Sync();
  ASSERT_FALSE(synced.ok());
  EXPECT_NE(synced.message().find("/nonexistent/forkengine-adopted"), std::string::npos) << synced.ToString();
}

}  // namespace
}  // namespace fe::snapshot
