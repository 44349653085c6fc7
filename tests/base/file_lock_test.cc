// base/file_lock.h: one holder at a time, a refusal that names what is locked and where, a bounded
// wait, and the lock gone with its holder.
#include "base/file_lock.h"

#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include <gtest/gtest.h>

#include "tests/support/file_util.h"
#include "tests/support/scratch.h"
#include "tests/support/temp_dir.h"

namespace fe {
namespace {

using namespace std::chrono_literals;

class FileLockTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Result<test::TempDir> dir = test::TempDir::Create();
    FE_ASSERT_OK(dir);
    dir_.emplace(std::move(*dir));
  }
  std::string LockPath() const { return dir_->Sub("state.lock"); }
  std::optional<test::TempDir> dir_;
};

TEST_F(FileLockTest, SecondHolderIsRefusedNamingWhatAndThePath) {
  Result<FileLock> first = FileLock::Acquire(LockPath(), "network state /x");
  FE_ASSERT_OK(first);
  struct stat st {};
  ASSERT_EQ(::stat(LockPath().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);

  Result<FileLock> second = FileLock::Acquire(LockPath(), "network state /x");
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), ErrorCode::kBusy);
  EXPECT_NE(second.status().message().find("network state /x"), std::string::npos) << second.status().message();
  EXPECT_NE(second.status().message().find(LockPath()), std::string::npos) << second.status().message();
}

TEST_F(FileLockTest, LockIsFreeOnceItsHolderIsGone) {
  { FE_ASSERT_OK(FileLock::Acquire(LockPath(), "ledger")); }
  FE_EXPECT_OK(FileLock::Acquire(LockPath(), "ledger"));
}

TEST_F(FileLockTest, WaiterGetsTheLockWhenReleasedWithinItsTimeout) {
  std::optional<FileLock> held;
  {
    Result<FileLock> first = FileLock::Acquire(LockPath(), "alias");
    FE_ASSERT_OK(first);
    held.emplace(std::move(*first));
  }
  std::thread releaser([&] {
    std::this_thread::sleep_for(50ms);
    held.reset();
  });
  Result<FileLock> waiter = FileLock::Acquire(LockPath(), "alias", 10s);
  releaser.join();
  FE_EXPECT_OK(waiter);
}

TEST_F(FileLockTest, WaiterGivesUpAfterItsTimeoutSayingHowLongItWaited) {
  Result<FileLock> first = FileLock::Acquire(LockPath(), "alias");
  FE_ASSERT_OK(first);
  const auto start = std::chrono::steady_clock::now();
  Result<FileLock> waiter = FileLock::Acquire(LockPath(), "alias", 100ms);
  ASSERT_FALSE(waiter.ok());
  EXPECT_GE(std::chrono::steady_clock::now() - start, 100ms);
  EXPECT_NE(waiter.status().message().find("waited 100 ms"), std::string::npos) << waiter.status().message();
}

TEST_F(FileLockTest, DescribeReplacesTheLockFilesContent) {
  Result<FileLock> lock = FileLock::Acquire(LockPath(), "alias");
  FE_ASSERT_OK(lock);
  lock->Describe("a much longer first line\n");
  lock->Describe("/src\n");
  Result<std::string> text = test::ReadFile(LockPath());
  FE_ASSERT_OK(text);
  EXPECT_EQ(*text, "/src\n");
}

TEST_F(FileLockTest, SymlinkedLockFileIsRefused) {
  const std::string target = dir_->Sub("elsewhere");
  FE_ASSERT_OK(test::WriteFile(target, "keep\n"));
  ASSERT_EQ(::symlink(target.c_str(), LockPath().c_str()), 0);
  Result<FileLock> lock = FileLock::Acquire(LockPath(), "alias");
  ASSERT_FALSE(lock.ok());
  EXPECT_NE(lock.status().message().find(LockPath()), std::string::npos) << lock.status().message();
}

}  // namespace
}  // namespace fe
