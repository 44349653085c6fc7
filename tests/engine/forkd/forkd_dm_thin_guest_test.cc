// Runs forkd_dm_thin_test (the built forkd on dm-thin, through its API) inside a QEMU guest when this
// host's kernel has no device-mapper (tests/guest/dm_thin_guest.h): forkd and the Cloud Hypervisor
// fixtures and forkctl go into the guest, named by $FE_FORKD, $FE_CH_FIXTURES and $FE_FORKCTL.
#include <gtest/gtest.h>

#include "tests/guest/dm_thin_guest.h"

namespace fe::test {
namespace {

TEST(ForkdDmThinGuestTest, ForkdOnDmThinPassesItsTestsInAGuest) {
  RunTestsInDmThinGuest(
      {.binary = FE_FORKD_DM_THIN_TEST,
       .files =
           {{.host_path = FE_FORKD_BINARY, .guest_path = "/opt/fe/forkd", .with_libraries = true, .strip_debug = true},
            {.host_path = FE_FORKCTL_BINARY,
             .guest_path = "/opt/fe/forkctl",
             .with_libraries = true,
             .strip_debug = true},
            {.host_path = FE_CH_FIXTURES "/boot_config.json",
             .guest_path = "/opt/fe/fixtures/boot_config.json",
             .with_libraries = false,
             .strip_debug = false},
            {.host_path = FE_CH_FIXTURES "/snapshot_config.json",
             .guest_path = "/opt/fe/fixtures/snapshot_config.json",
             .with_libraries = false,
             .strip_debug = false}},
       .environment = {{"FE_FORKD", "/opt/fe/forkd"},
                       {"FE_FORKCTL", "/opt/fe/forkctl"},
                       {"FE_CH_FIXTURES", "/opt/fe/fixtures"}},
       // The initramfs is unpacked into guest RAM: the ASan forkd, forkctl and test binary with their
       // libraries need more than 1 GiB there ("Initramfs unpacking failed: write error").
       .memory_mib = 2048,
       // Inside ctest's 600 s (tests/CMakeLists.txt, QEMU_GUEST): a debug build takes ~40 s here, an ASan
       // one passed 300 s while e2e guests ran beside it.
       .timeout = std::chrono::seconds(540)});
}

}  // namespace
}  // namespace fe::test
