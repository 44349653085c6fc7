// Runs a test binary in a QEMU guest that has what the dm-thin backend needs (the dm-thin modules,
// loop, ext4 and mke2fs), for hosts whose kernel has no device-mapper. Every test in the binary must
// pass and none may skip (FE_REQUIRE_DM=1 turns "no device-mapper" into a failure). Skips itself
// where the kernel has device-mapper (the binary's tests run directly then) or where no guest can run.
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "tests/guest/guest_runner.h"

namespace fe::test {

struct DmThinGuestRun {
  std::string binary = {};                                            // the test binary, copied to /opt/fe/<its name>
  std::string arguments = {};                                         // gtest arguments
  std::vector<GuestFile> files = {};                                  // more files the tests need
  std::vector<std::pair<std::string, std::string>> environment = {};  // more variables for the binary
  int memory_mib = 512;
  std::chrono::seconds timeout{120};
};

void RunTestsInDmThinGuest(const DmThinGuestRun& run);

}  // namespace fe::test
