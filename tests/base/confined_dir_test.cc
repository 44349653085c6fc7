// base/confined_dir.h: every operation stays beneath the directory; a symlink anywhere on the way,
// "..", or an absolute path is refused, and nothing outside is read or written.
#include "base/confined_dir.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include "base/deferred_sync.h"
#include "tests/support/file_util.h"
#include "tests/support/scratch.h"
#include "tests/support/temp_dir.h"

namespace fe {
namespace {

class ConfinedDirTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Result<test::TempDir> dir = test::TempDir::Create();
    FE_ASSERT_OK(dir);
    dir_.emplace(std::move(*dir));
    inside_ = dir_->Sub("inside");
    outside_ = dir_->Sub("outside");
    for (const std::string& d : {inside_, inside_ + "/sub", outside_}) ASSERT_EQ(::mkdir(d.c_str(), 0755), 0);
    FE_ASSERT_OK(test::WriteFile(inside_ + "/sub/config.json", "inside\n"));
    FE_ASSERT_OK(test::WriteFile(outside_ + "/secret", "outside\n"));
    Result<ConfinedDir> confined = ConfinedDir::Open(inside_);
    FE_ASSERT_OK(confined);
    confined_.emplace(std::move(*confined));
  }
  std::string Outside() {
    Result<std::string> text = test::ReadFile(outside_ + "/secret");
    return text.ok() ? *text : text.status().ToString();
  }

  std::optional<test::TempDir> dir_;
  std::string inside_, outside_;
  std::optional<ConfinedDir> confined_;
};

TEST_F(ConfinedDirTest, ReadsAndReplacesFilesBeneathIt) {
  Result<std::string> text = confined_->ReadFile("sub/config.json");
  FE_ASSERT_OK(text);
  EXPECT_EQ(*text, "inside\n");
  FE_ASSERT_OK(confined_->ReplaceFile("sub/config.json", "new\n"));
  EXPECT_EQ(*test::ReadFile(inside_ + "/sub/config.json"), "new\n");
  EXPECT_TRUE(confined_->IsRegularFile("sub/config.json"));
  EXPECT_TRUE(confined_->IsDirectory("sub"));
  EXPECT_EQ(confined_->PathOf("sub/config.json"), inside_ + "/sub/config.json");
}

TEST_F(ConfinedDirTest, SymlinkedDirectoryOnTheWayIsNeverFollowed) {
  ASSERT_EQ(::symlink(outside_.c_str(), (inside_ + "/snapshot").c_str()), 0);
  EXPECT_FALSE(confined_->ReadFile("snapshot/secret").ok());
  Status replaced = confined_->ReplaceFile("snapshot/secret", "pwned\n");
  EXPECT_FALSE(replaced.ok());
  EXPECT_NE(replaced.message().find(inside_ + "/snapshot"), std::string::npos) << replaced.message();
  EXPECT_FALSE(confined_->MakeDirectory("snapshot/new").ok());
  EXPECT_FALSE(confined_->IsRegularFile("snapshot/secret"));
  EXPECT_EQ(Outside(), "outside\n");
  EXPECT_EQ(::access((outside_ + "/new").c_str(), F_OK), -1);
}

TEST_F(ConfinedDirTest, SymlinkedFileIsNeitherReadNorReplaced) {
  ASSERT_EQ(::symlink((outside_ + "/secret").c_str(), (inside_ + "/config.json").c_str()), 0);
  EXPECT_FALSE(confined_->ReadFile("config.json").ok());
  EXPECT_FALSE(confined_->ReplaceFile("config.json", "pwned\n").ok());
  EXPECT_EQ(Outside(), "outside\n");
  Result<std::optional<struct stat>> st = confined_->Stat("config.json");
  FE_ASSERT_OK(st);
  ASSERT_TRUE(st->has_value());
  EXPECT_TRUE(S_ISLNK((*st)->st_mode)) << "a link is reported as what it is";
}

TEST_F(ConfinedDirTest, DotDotAndAbsolutePathsAreRefused) {
  EXPECT_FALSE(confined_->ReadFile("../outside/secret").ok());
  EXPECT_FALSE(confined_->ReadFile(outside_ + "/secret").ok());
  EXPECT_FALSE(confined_->ReplaceFile("sub/../../outside/secret", "pwned\n").ok());
  EXPECT_EQ(Outside(), "outside\n");
}

TEST_F(ConfinedDirTest, OpeningASymlinkedDirectoryIsRefusedNamingIt) {
  const std::string link = dir_->Sub("link");
  ASSERT_EQ(::symlink(outside_.c_str(), link.c_str()), 0);
  Result<ConfinedDir> opened = ConfinedDir::Open(link);
  ASSERT_FALSE(opened.ok());
  EXPECT_EQ(opened.status().code(), ErrorCode::kFailedPrecondition);
  EXPECT_NE(opened.status().message().find(link + ": is a symbolic link"), std::string::npos)
      << opened.status().message();
  EXPECT_EQ(ConfinedDir::Open(outside_ + "/secret").status().code(), ErrorCode::kFailedPrecondition);
  EXPECT_EQ(ConfinedDir::Open(dir_->Sub("missing")).status().code(), ErrorCode::kNotFound);
}

TEST_F(ConfinedDirTest, ReplaceInsideADeferredScopeLeavesNoTemporaryFile) {
  {
    DeferredSync deferred;
    FE_ASSERT_OK(confined_->ReplaceFile("sub/new.json", "{}"));
    FE_ASSERT_OK(deferred.Sync());
  }
  Result<std::vector<std::string>> entries = test::ListDir(inside_ + "/sub");
  FE_ASSERT_OK(entries);
  EXPECT_EQ(*entries, (std::vector<std::string>{"config.json", "new.json"}));
}

TEST_F(ConfinedDirTest, OverwriteRewritesTheSameFileInPlaceAndCutsWhatWasLonger) {
  FE_ASSERT_OK(test::WriteFile(inside_ + "/sub/config.json", "a much longer original content\n"));
  struct stat before {};
  ASSERT_EQ(::stat((inside_ + "/sub/config.json").c_str(), &before), 0);
  {
    DeferredSync deferred;
    FE_ASSERT_OK(confined_->OverwriteFile("sub/config.json", "short\n"));
    FE_ASSERT_OK(deferred.Sync());
  }
  FE_ASSERT_OK(confined_->OverwriteFile("sub/config.json", "synced on its own\n"));
  EXPECT_EQ(*test::ReadFile(inside_ + "/sub/config.json"), "synced on its own\n");
  struct stat after {};
  ASSERT_EQ(::stat((inside_ + "/sub/config.json").c_str(), &after), 0);
  EXPECT_EQ(after.st_ino, before.st_ino) << "no new inode, no rename";
  EXPECT_EQ(*test::ListDir(inside_ + "/sub"), (std::vector<std::string>{"config.json"}));
  EXPECT_EQ(confined_->OverwriteFile("sub/missing.json", "{}").code(), ErrorCode::kNotFound)
      << "an overwrite never creates a file";
}

TEST_F(ConfinedDirTest, OverwriteRefusesAFifoWithoutHangingAndNeverFollowsALink) {
  ASSERT_EQ(::mkfifo((inside_ + "/sub/pipe").c_str(), 0644), 0);
  EXPECT_FALSE(confined_->OverwriteFile("sub/pipe", "{}").ok());
  ASSERT_EQ(::symlink((outside_ + "/secret").c_str(), (inside_ + "/config.json").c_str()), 0);
  EXPECT_FALSE(confined_->OverwriteFile("config.json", "pwned\n").ok());
  ASSERT_EQ(::symlink(outside_.c_str(), (inside_ + "/snapshot").c_str()), 0);
  EXPECT_FALSE(confined_->OverwriteFile("snapshot/secret", "pwned\n").ok());
  EXPECT_EQ(Outside(), "outside\n");
}

TEST_F(ConfinedDirTest, RemoveDeletesALinkNotWhatItPointsTo) {
  ASSERT_EQ(::symlink((outside_ + "/secret").c_str(), (inside_ + "/link").c_str()), 0);
  FE_ASSERT_OK(confined_->Remove("link"));
  EXPECT_EQ(::access((inside_ + "/link").c_str(), F_OK), -1);
  EXPECT_EQ(Outside(), "outside\n");
  FE_EXPECT_OK(confined_->Remove("never-there"));
}

TEST(TemporaryNameTest, RecognisesTheAtomicWritersTemporaryFiles) {
  EXPECT_TRUE(IsTemporaryName("instance.json.tmp-a1B2c3"));
  EXPECT_TRUE(IsTemporaryName("network.json.tmp-XXXXXX"));
  EXPECT_FALSE(IsTemporaryName("instance.json"));
  EXPECT_FALSE(IsTemporaryName("x.tmp-123"));
  EXPECT_FALSE(IsTemporaryName(".tmp-abcdef"));
}

}  // namespace
}  // namespace fe
