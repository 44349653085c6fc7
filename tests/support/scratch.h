// Scratch filesystems for tests: loop-mounted XFS (reflink=1) and btrfs from sparse images in a
// private /tmp directory, and an ext4 directory without reflink for the copy fallback.
//
// The filesystems are mounted on first use and shared by the tests of a suite (and of the process);
// ScratchTest::TearDownTestSuite and process exit tear them down whatever the tests did. Each test gets
// a fresh directory named after it. A fatal signal lazily unmounts them, and the next test process
// reaps what a killed one left behind. Without root or /dev/loop-control the tests that need a loop
// filesystem are skipped with the reason.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <ostream>
#include <string>

#include "base/status.h"
#include "storage/loop/loop_filesystem.h"

namespace fe::test {

enum class ScratchFs {
  kXfs,    // loop-mounted XFS with reflink=1
  kBtrfs,  // loop-mounted btrfs
  kExt4,   // no reflink: /tmp itself when it is ext4, else a loop-mounted ext4
};
std::string_view ScratchFsName(ScratchFs fs);
// Lets GoogleTest print parameters (and ctest list them) by name.
void PrintTo(ScratchFs fs, std::ostream* os);

// What a request for scratch space produced: a path, a reason to skip, or an error.
struct ScratchResult {
  std::string path;
  std::string skip;  // non-empty: the environment cannot provide this; skip the test
  Status status;     // not ok: it should have worked but failed
};

class Scratch {
 public:
  // A new empty directory for the running test on `fs`.
  static ScratchResult Dir(ScratchFs fs);
  // The scratch area on `fs` itself (its mount point or directory), shared by all tests.
  static ScratchResult Root(ScratchFs fs);
  // A directory on the host filesystem holding the scratch images, for tests that make their own.
  static ScratchResult HostDir();
  // Unmounts and removes everything. Safe to call repeatedly; the next Dir() starts over.
  static void Release();
};

// Base fixture: shares the scratch filesystems among the suite's tests and releases them after.
class ScratchTest : public ::testing::Test {
 protected:
  static void TearDownTestSuite() { Scratch::Release(); }
};

// Name of the running test, usable as a path component.
std::string CurrentTestName();

}  // namespace fe::test

// Declares `std::string var` holding a fresh directory on `fs` for this test, or skips the test.
#define FE_SCRATCH(var, call)                                              \
  std::string var;                                                         \
  do {                                                                     \
    ::fe::test::ScratchResult fe_scratch_ = (call);                        \
    if (!fe_scratch_.skip.empty()) GTEST_SKIP() << fe_scratch_.skip;       \
    ASSERT_TRUE(fe_scratch_.status.ok()) << fe_scratch_.status.ToString(); \
    var = std::move(fe_scratch_.path);                                     \
  } while (0)

#define FE_SCRATCH_DIR(var, fs) FE_SCRATCH(var, ::fe::test::Scratch::Dir(fs))

// Skips the test unless loop filesystems can be made here.
#define FE_REQUIRE_LOOP()                                                                   \
  do {                                                                                      \
    std::string fe_why_;                                                                    \
    if (!::fe::storage::loop::LoopFilesystem::Available(&fe_why_)) GTEST_SKIP() << fe_why_; \
  } while (0)

// Asserts a Status/Result is ok, printing it otherwise.
#define FE_ASSERT_OK(expr)                                               \
  do {                                                                   \
    const auto& fe_ok_ = (expr);                                         \
    ASSERT_TRUE(fe_ok_.ok()) << ::fe::test::StatusOf(fe_ok_).ToString(); \
  } while (0)
#define FE_EXPECT_OK(expr)                                               \
  do {                                                                   \
    const auto& fe_ok_ = (expr);                                         \
    EXPECT_TRUE(fe_ok_.ok()) << ::fe::test::StatusOf(fe_ok_).ToString(); \
  } while (0)

namespace fe::test {
inline const Status& StatusOf(const Status& status) { return status; }
template <typename T>
const Status& StatusOf(const Result<T>& result) {
  return result.status();
}
}  // namespace fe::test
