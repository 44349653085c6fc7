// Runs dm_thin_backend_test and the dm-thin half of the backend conformance suite inside a QEMU guest when this host's
// kernel has no device-mapper. The guest loads ext4 and the dm-thin modules (crc32c_generic first: dm-persistent-data
// and ext4 need crc32c) and loop, holds mke2fs, and runs the test binary with FE_REQUIRE_DM=1 so a missing kernel
// feature fails rather than skips.
#include <gtest/gtest.h>

#include <cstdio>
#include <string>

#include "storage/dm_thin/dm_thin_device.h"
#include "tests/guest/guest_runner.h"

namespace fe::test {
namespace {

// Runs `binary` (with `arguments`) in a guest with the dm-thin modules and loop, requiring
// device-mapper, and expects every test to pass and none to skip.
void RunInGuest(const std::string& binary, const std::string& arguments) {
  std::string why;
  if (storage::dm_thin::DeviceMapperAvailable(&why)) {
    GTEST_SKIP() << "this kernel has device-mapper: the tests run directly";
  }
  if (std::string missing = GuestUnavailableReason(); !missing.empty()) GTEST_SKIP() << missing;

  GuestSpec spec;
  // ext4 and mke2fs: every thin volume holds an ext4 filesystem (storage/dm_thin/volume_filesystem.h).
  spec.modules = {"crc32c_generic", "libcrc32c", "crc16",    "mbcache",       "jbd2",
                  "ext4",           "dm-mod",    "dm-bufio", "dm-bio-prison", "dm-persistent-data",
                  "dm-thin-pool",   "loop"};
  const std::string name = binary.substr(binary.rfind('/') + 1);
  spec.files = {{.host_path = binary, .guest_path = "/opt/fe/" + name, .with_libraries = true},
                {.host_path = "/usr/sbin/mke2fs", .guest_path = "/usr/sbin/mke2fs", .with_libraries = true},
                {.host_path = "/etc/mke2fs.conf", .guest_path = "/etc/mke2fs.conf"}};
  spec.command =
      "PATH=/usr/sbin:/usr/bin:/sbin:/bin FE_REQUIRE_DM=1 /opt/fe/" + name + " --gtest_color=no " + arguments;
  spec.timeout = std::chrono::seconds(120);
  Result<GuestResult> result = RunGuest(spec);
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  EXPECT_FALSE(result->timed_out) << result->Summary() << "\n" << result->serial;
  EXPECT_EQ(result->exit_code, 0) << result->Summary() << "\n" << result->serial << result->qemu_output;
  EXPECT_NE(result->serial.find("[  PASSED  ]"), std::string::npos) << result->serial;
  EXPECT_EQ(result->serial.find("[  SKIPPED ]"), std::string::npos) << result->serial;
  std::printf("%s\n", result->Summary().c_str());
  if (::testing::Test::HasFailure() == false) {
    // The per-test lines and timings from the guest, for the log.
    size_t start = result->serial.find("[==========]");
    if (start != std::string::npos) std::printf("%s\n", result->serial.substr(start).c_str());
  }
}

TEST(DmThinGuestTest, KernelFacingTestsPassInAGuest) { RunInGuest(FE_DM_THIN_BACKEND_TEST, ""); }

TEST(DmThinGuestTest, DmThinPassesTheBackendConformanceSuiteInAGuest) {
  RunInGuest(FE_BACKEND_CONFORMANCE_TEST, "--gtest_filter=EveryBackend/BackendConformanceTest.*/dm_thin");
}

}  // namespace
}  // namespace fe::test
