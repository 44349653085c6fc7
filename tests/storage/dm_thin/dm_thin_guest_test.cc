// Runs dm_thin_backend_test and the dm-thin half of the backend conformance suite inside a QEMU guest
// when this host's kernel has no device-mapper (tests/guest/dm_thin_guest.h).
#include <gtest/gtest.h>

#include "tests/guest/dm_thin_guest.h"

namespace fe::test {
namespace {

TEST(DmThinGuestTest, KernelFacingTestsPassInAGuest) { RunTestsInDmThinGuest({.binary = FE_DM_THIN_BACKEND_TEST}); }

TEST(DmThinGuestTest, DmThinPassesTheBackendConformanceSuiteInAGuest) {
  RunTestsInDmThinGuest({.binary = FE_BACKEND_CONFORMANCE_TEST,
                         .arguments = "--gtest_filter=EveryBackend/BackendConformanceTest.*/dm_thin"});
}

}  // namespace
}  // namespace fe::test
