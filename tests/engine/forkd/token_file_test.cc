// engine/forkd/token_file.h: a token file others can read, or that belongs to someone else, is
// refused with a message saying how to fix it; a private one is read, its whitespace trimmed.
#include "engine/forkd/token_file.h"

#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include "tests/support/file_util.h"
#include "tests/support/scratch.h"
#include "tests/support/temp_dir.h"

namespace fe::engine::forkd {
namespace {

class TokenFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Result<test::TempDir> dir = test::TempDir::Create();
    FE_ASSERT_OK(dir);
    dir_.emplace(std::move(*dir));
    path_ = dir_->Sub("token");
  }
  std::optional<test::TempDir> dir_;
  std::string path_;
};

TEST_F(TokenFileTest, PrivateFileIsReadAndTrimmed) {
  FE_ASSERT_OK(test::WriteFile(path_, "  s3cret-token\n", 0600));
  Result<std::string> token = ReadTokenFile(path_);
  FE_ASSERT_OK(token);
  EXPECT_EQ(*token, "s3cret-token");
}

TEST_F(TokenFileTest, FileOthersCanReadIsRefusedSayingHowToFixIt) {
  FE_ASSERT_OK(test::WriteFile(path_, "s3cret-token\n", 0644));
  ASSERT_EQ(::chmod(path_.c_str(), 0644), 0);
  Result<std::string> token = ReadTokenFile(path_);
  ASSERT_FALSE(token.ok());
  EXPECT_EQ(token.status().code(), ErrorCode::kPermissionDenied);
  EXPECT_NE(token.status().message().find("mode 0644"), std::string::npos) << token.status().message();
  EXPECT_NE(token.status().message().find("chmod 600 " + path_), std::string::npos) << token.status().message();
  ASSERT_EQ(::chmod(path_.c_str(), 0620), 0);  // group-writable: someone else could change it
  EXPECT_EQ(ReadTokenFile(path_).status().code(), ErrorCode::kPermissionDenied);
}

TEST_F(TokenFileTest, FileOfAnotherUserIsRefused) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to give the file away";
  FE_ASSERT_OK(test::WriteFile(path_, "s3cret-token\n", 0600));
  ASSERT_EQ(::chown(path_.c_str(), 65534, 65534), 0);
  Result<std::string> token = ReadTokenFile(path_);
  EXPECT_EQ(token.status().code(), ErrorCode::kPermissionDenied);
  EXPECT_NE(token.status().message().find("belongs to uid 65534"), std::string::npos) << token.status().message();
}

TEST_F(TokenFileTest, EmptyMissingAndLinkedFilesAreRefused) {
  FE_ASSERT_OK(test::WriteFile(path_, " \n", 0600));
  EXPECT_EQ(ReadTokenFile(path_).status().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(ReadTokenFile(dir_->Sub("missing")).status().code(), ErrorCode::kNotFound);
  ASSERT_EQ(::symlink(path_.c_str(), dir_->Sub("link").c_str()), 0);
  EXPECT_FALSE(ReadTokenFile(dir_->Sub("link")).ok());
}

}  // namespace
}  // namespace fe::engine::forkd
