#include "tests/guest/dm_thin_guest.h"

#include <gtest/gtest.h>

#include <cstdio>

#include "storage/dm_thin/dm_thin_device.h"

namespace fe::test {

GuestSpec DmThinGuestSpec(const std::string& binary, const std::string& arguments) {
  GuestSpec spec;
  // crc32c_generic first: dm-persistent-data and ext4 need crc32c. Every thin volume holds an ext4
  // filesystem (storage/dm_thin/volume_filesystem.h), made by mke2fs.
  spec.modules = {"crc32c_generic", "libcrc32c", "crc16",    "mbcache",       "jbd2",
                  "ext4",           "dm-mod",    "dm-bufio", "dm-bio-prison", "dm-persistent-data",
                  "dm-thin-pool",   "loop"};
  const std::string name = binary.substr(binary.rfind('/') + 1);
  spec.files = {
      {.host_path = binary, .guest_path = "/opt/fe/" + name, .with_libraries = true, .strip_debug = true},
      {.host_path = "/usr/sbin/mke2fs", .guest_path = "/usr/sbin/mke2fs", .with_libraries = true, .strip_debug = false},
      {.host_path = "/etc/mke2fs.conf",
       .guest_path = "/etc/mke2fs.conf",
       .with_libraries = false,
       .strip_debug = false}};
  spec.command = "PATH=/usr/sbin:/usr/bin:/sbin:/bin /opt/fe/" + name + " " + arguments;
  return spec;
}

void RunTestsInDmThinGuest(const DmThinGuestRun& run) {
  std::string why;
  if (storage::dm_thin::DeviceMapperAvailable(&why)) {
    GTEST_SKIP() << "this kernel has device-mapper: the tests run directly";
  }
  if (std::string missing = GuestUnavailableReason(); !missing.empty()) GTEST_SKIP() << missing;

  std::string environment = "FE_REQUIRE_DM=1";
  for (const auto& [variable, value] : run.environment) environment += " " + variable + "=" + value;
  GuestSpec spec = DmThinGuestSpec(run.binary, "--gtest_color=no " + run.arguments);
  spec.command = environment + " " + spec.command;
  spec.files.insert(spec.files.end(), run.files.begin(), run.files.end());
  spec.memory_mib = run.memory_mib;
  spec.timeout = run.timeout;
  Result<GuestResult> result = RunGuest(spec);
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  EXPECT_FALSE(result->timed_out) << result->Summary() << "\n" << result->serial;
  EXPECT_EQ(result->exit_code, 0) << result->Summary() << "\n" << result->serial << result->qemu_output;
  EXPECT_NE(result->serial.find("[  PASSED  ]"), std::string::npos) << result->serial;
  EXPECT_EQ(result->serial.find("[  SKIPPED ]"), std::string::npos) << result->serial;
  std::printf("%s\n", result->Summary().c_str());
  if (!::testing::Test::HasFailure()) {
    // The per-test lines and timings from the guest, for the log.
    size_t start = result->serial.find("[==========]");
    if (start != std::string::npos) std::printf("%s\n", result->serial.substr(start).c_str());
  }
}

}  // namespace fe::test
