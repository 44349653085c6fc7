#include "base/process.h"

#include <pthread.h>
#include <signal.h>

#include <gtest/gtest.h>

namespace fe {
namespace {

TEST(ProcessTest, CapturesStdoutAndStderrAndExitCode) {
  Result<ProcessResult> result = RunProcess({"sh", "-c", "echo out; echo err >&2; exit 3"});
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  EXPECT_EQ(result->exit_code, 3);
  EXPECT_EQ(result->signal, 0);
  EXPECT_EQ(result->output, "out\nerr\n");
}

TEST(ProcessTest, PassesArgumentsWithoutAShell) {
  Result<ProcessResult> result = RunProcess({"printf", "%s|", "a b", "$HOME", "*"});
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  EXPECT_EQ(result->exit_code, 0);
  EXPECT_EQ(result->output, "a b|$HOME|*|");
}

TEST(ProcessTest, ReportsTheKillingSignal) {
  Result<ProcessResult> result = RunProcess({"sh", "-c", "kill -KILL $$"});
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  EXPECT_EQ(result->exit_code, -1);
  EXPECT_EQ(result->signal, 9);
}

TEST(ProcessTest, CapturesOutputLargerThanAPipeBuffer) {
  Result<ProcessResult> result = RunProcess({"head", "-c", "1000000", "/dev/zero"});
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  EXPECT_EQ(result->exit_code, 0);
  EXPECT_EQ(result->output.size(), 1000000u);
}

TEST(ProcessTest, MissingProgramIsNotFoundNamingTheCommand) {
  Result<ProcessResult> result = RunProcess({"forkengine-no-such-program", "--flag"});
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), ErrorCode::kNotFound);
  EXPECT_NE(result.status().message().find("forkengine-no-such-program --flag"), std::string::npos)
      << result.status().message();
}

TEST(ProcessTest, EmptyArgvIsInvalidArgument) {
  Result<ProcessResult> result = RunProcess({});
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), ErrorCode::kInvalidArgument);
}

TEST(ProcessTest, CheckedNonZeroExitCarriesCommandAndOutput) {
  Status status = RunProcessChecked({"sh", "-c", "echo 'mkfs: device too small' >&2; exit 1"});
  ASSERT_FALSE(status.ok());
  EXPECT_NE(status.message().find("sh -c"), std::string::npos) << status.message();
  EXPECT_NE(status.message().find("exit status 1"), std::string::npos) << status.message();
  EXPECT_NE(status.message().find("mkfs: device too small"), std::string::npos) << status.message();
}

TEST(ProcessTest, ChildGetsDefaultSignalsWhateverTheCallerBlocks) {
  sigset_t block, previous;
  sigemptyset(&block);
  sigaddset(&block, SIGTERM);
  ASSERT_EQ(::pthread_sigmask(SIG_BLOCK, &block, &previous), 0);
  Result<ProcessResult> result = RunProcess({"sh", "-c", "kill -TERM $$; echo survived"});
  ::pthread_sigmask(SIG_SETMASK, &previous, nullptr);
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  EXPECT_EQ(result->signal, SIGTERM) << result->output;
}

TEST(ProcessTest, CheckedZeroExitIsOk) { EXPECT_TRUE(RunProcessChecked({"true"}).ok()); }

}  // namespace
}  // namespace fe
