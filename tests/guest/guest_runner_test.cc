// The guest runner itself: the initramfs format, and a real boot that reports a command's status.
#include "tests/guest/guest_runner.h"

#include <gtest/gtest.h>

#include "base/process.h"
#include "tests/guest/initramfs.h"
#include "tests/support/file_util.h"
#include "tests/support/temp_dir.h"

namespace fe::test {
namespace {

TEST(InitramfsTest, ArchiveListsEveryEntryWithParentsFirst) {
  Result<TempDir> dir = TempDir::Create();
  ASSERT_TRUE(dir.ok()) << dir.status().ToString();
  ASSERT_TRUE(WriteFile(dir->Sub("host.txt"), "from the host\n").ok());
  InitramfsBuilder image;
  image.AddContent("/init", "#!/bin/sh\n", 0755);
  image.AddFile("/opt/fe/host.txt", dir->Sub("host.txt"), 0644);
  image.AddSymlink("/lib64/loader", "/lib/ld.so");
  image.AddDirectory("/empty");
  ASSERT_TRUE(image.Write(dir->Sub("image.cpio")).ok());

  Result<ProcessResult> list = RunProcess({"cpio", "-it", "--quiet", "-F", dir->Sub("image.cpio")});
  ASSERT_TRUE(list.ok()) << list.status().ToString();
  EXPECT_EQ(list->exit_code, 0) << list->output;
  EXPECT_EQ(list->output, "init\nopt\nopt/fe\nopt/fe/host.txt\nlib64\nlib64/loader\nempty\n");

  const std::string out = dir->Sub("out");
  Result<ProcessResult> extract = RunProcess({"cpio", "-id", "--quiet", "-D", out, "-F", dir->Sub("image.cpio")});
  ASSERT_TRUE(extract.ok()) << extract.status().ToString();
  Result<std::string> content = ReadFile(out + "/opt/fe/host.txt");
  ASSERT_TRUE(content.ok()) << content.status().ToString();
  EXPECT_EQ(*content, "from the host\n");
}

TEST(GuestRunnerTest, ReportsTheCommandsOutputAndExitStatus) {
  if (std::string why = GuestUnavailableReason(); !why.empty()) GTEST_SKIP() << why;
  GuestSpec spec;
  spec.command = "echo hello from $(uname -s); ls /dev/null >/dev/null && exit 7";
  spec.timeout = std::chrono::seconds(60);
  Result<GuestResult> result = RunGuest(spec);
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  EXPECT_FALSE(result->timed_out) << result->serial;
  EXPECT_EQ(result->exit_code, 7) << result->Summary() << "\n" << result->serial << result->qemu_output;
  EXPECT_NE(result->serial.find("hello from Linux"), std::string::npos) << result->serial;
  std::printf("%s\n", result->Summary().c_str());
}

TEST(GuestRunnerTest, LoadsRequestedModules) {
  if (std::string why = GuestUnavailableReason(); !why.empty()) GTEST_SKIP() << why;
  GuestSpec spec;
  spec.modules = {"loop"};
  spec.command = "test -e /dev/loop-control";
  Result<GuestResult> result = RunGuest(spec);
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  EXPECT_EQ(result->exit_code, 0) << result->Summary() << "\n" << result->serial;
}

TEST(GuestRunnerTest, UnknownModuleIsAnError) {
  if (std::string why = GuestUnavailableReason(); !why.empty()) GTEST_SKIP() << why;
  GuestSpec spec;
  spec.modules = {"no-such-module-anywhere"};
  Result<GuestResult> result = RunGuest(spec);
  ASSERT_FALSE(result.ok());
  EXPECT_NE(result.status().message().find("no-such-module-anywhere"), std::string::npos);
}

TEST(GuestRunnerTest, HungGuestTimesOut) {
  if (std::string why = GuestUnavailableReason(); !why.empty()) GTEST_SKIP() << why;
  GuestSpec spec;
  spec.command = "sleep 600";
  spec.timeout = std::chrono::seconds(2);  // shorter than the boot itself
  Result<GuestResult> result = RunGuest(spec);
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  EXPECT_TRUE(result->timed_out) << result->Summary();
  EXPECT_EQ(result->exit_code, -1);
}

}  // namespace
}  // namespace fe::test
