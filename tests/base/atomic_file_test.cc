#include "base/atomic_file.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include "base/unique_fd.h"
#include "tests/support/file_util.h"
#include "tests/support/scratch.h"
#include "tests/support/temp_dir.h"

namespace fe::snapshot {
namespace {

// Makes writes past `bytes` fail with EFBIG for the lifetime of the guard (SIGXFSZ ignored).
class FileSizeLimit {
 public:
  explicit FileSizeLimit(rlim_t bytes) {
    ::getrlimit(RLIMIT_FSIZE, &saved_);
    old_handler_ = ::signal(SIGXFSZ, SIG_IGN);
    rlimit limit = saved_;
    limit.rlim_cur = bytes;
    ::setrlimit(RLIMIT_FSIZE, &limit);
  }
  ~FileSizeLimit() {
    ::setrlimit(RLIMIT_FSIZE, &saved_);
    ::signal(SIGXFSZ, old_handler_);
  }

 private:
  rlimit saved_{};
  sighandler_t old_handler_;
};

Result<test::TempDir> MakeDir() { return test::TempDir::Create(); }

TEST(AtomicFileTest, ReplaceWritesANewFileWithTheGivenMode) {
  Result<test::TempDir> dir = MakeDir();
  FE_ASSERT_OK(dir);
  std::string path = dir->Sub("config.json");
  FE_ASSERT_OK(ReplaceFileAtomically(path, "{}\n", 0600));
  Result<std::string> content = test::ReadFile(path);
  FE_ASSERT_OK(content);
  EXPECT_EQ(*content, "{}\n");
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
}

TEST(AtomicFileTest, ReplaceNeverWritesTheOldInode) {
  Result<test::TempDir> dir = MakeDir();
  FE_ASSERT_OK(dir);
  std::string path = dir->Sub("config.json");
  FE_ASSERT_OK(test::WriteFile(path, "old content", 0640));
  UniqueFd old(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  ASSERT_TRUE(old.valid());
  FE_ASSERT_OK(ReplaceFileAtomically(path, "new"));
  char buffer[64] = {};
  ASSERT_EQ(::pread(old.get(), buffer, sizeof(buffer), 0), 11);
  EXPECT_EQ(std::string(buffer), "old content");  // the reader's file was never touched
  EXPECT_EQ(*test::ReadFile(path), "new");
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0640u);  // an existing file keeps its mode
}

TEST(AtomicFileTest, FailedReplaceLeavesTheFileAndNoTemporaryFile) {
  Result<test::TempDir> dir = MakeDir();
  FE_ASSERT_OK(dir);
  std::string path = dir->Sub("manifest.json");
  FE_ASSERT_OK(test::WriteFile(path, "original"));
  Status status;
  {
    FileSizeLimit limit(4096);
    status = ReplaceFileAtomically(path, std::string(64 * 1024, 'x'));
  }
  ASSERT_FALSE(status.ok());
  EXPECT_EQ(status.code(), ErrorCode::kNoSpace) << status.ToString();
  EXPECT_NE(status.message().find("manifest.json.tmp-"), std::string::npos) << status.message();
  EXPECT_EQ(*test::ReadFile(path), "original");
  Result<std::vector<std::string>> names = test::ListDir(dir->path());
  FE_ASSERT_OK(names);
  EXPECT_EQ(*names, std::vector<std::string>{"manifest.json"});
}

TEST(AtomicFileTest, ReplaceRefusesToReplaceADirectory) {
  Result<test::TempDir> dir = MakeDir();
  FE_ASSERT_OK(dir);
  ASSERT_EQ(::mkdir(dir->Sub("config.json").c_str(), 0755), 0);
  Status status = ReplaceFileAtomically(dir->Sub("config.json"), "{}");
  EXPECT_EQ(status.code(), ErrorCode::kInvalidArgument) << status.ToString();
  EXPECT_EQ(*test::ListDir(dir->path()), std::vector<std::string>{"config.json"});
}

TEST(AtomicFileTest, ReadReturnsTheWholeFile) {
  Result<test::TempDir> dir = MakeDir();
  FE_ASSERT_OK(dir);
  std::string content(200000, 'a');
  FE_ASSERT_OK(test::WriteFile(dir->Sub("big"), content));
  Result<std::string> read = ReadSmallFile(dir->Sub("big"));
  FE_ASSERT_OK(read);
  EXPECT_EQ(*read, content);
}

TEST(AtomicFileTest, ReadRefusesLargeFilesSymlinksAndMissingFiles) {
  Result<test::TempDir> dir = MakeDir();
  FE_ASSERT_OK(dir);
  FE_ASSERT_OK(test::WriteFile(dir->Sub("big"), std::string(100, 'a')));
  EXPECT_EQ(ReadSmallFile(dir->Sub("big"), 10).status().code(), ErrorCode::kInvalidArgument);
  ASSERT_EQ(::symlink(dir->Sub("big").c_str(), dir->Sub("link").c_str()), 0);
  EXPECT_FALSE(ReadSmallFile(dir->Sub("link")).ok());
  Result<std::string> missing = ReadSmallFile(dir->Sub("missing"));
  EXPECT_EQ(missing.status().code(), ErrorCode::kNotFound);
  EXPECT_NE(missing.status().message().find(dir->Sub("missing")), std::string::npos);
}

}  // namespace
}  // namespace fe::snapshot
