// Runs a test binary in a QEMU guest that has what the dm-thin backend needs (the dm-thin modules,
// loop, ext4 and mke2fs), for hosts whose kernel has no device-mapper. Every test in the binary must
// pass and none may skip (FE_REQUIRE_DM=1 turns "no device-mapper" into a failure). Skips itself
// where the kernel has device-mapper (the binary's tests run directly then) or where no guest can run.
#pragma once

#include <chrono>
#include <utility>
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

// A guest with what the dm-thin backend needs (its modules, loop, ext4, mke2fs), running `binary`
// (copied to /opt/fe/<its name>, without debug sections) with `arguments` and PATH set; FE_REQUIRE_DM
// is not set. For programs that are not tests: forkbench's dm-thin column (dm_thin_guest_run.cc).
GuestSpec DmThinGuestSpec(const std::string& binary, const std::string& arguments);

}  // namespace fe::test
