// Recovery removes the TAP devices a crash left behind (engine/recovery.cc): those of instances whose
// VM is not running (Standby, or Running on disk but its process gone) and of orphan leases, and
// keeps the TAP of a VM that still runs. Runs in a network namespace of its own; skips without
// /dev/net/tun.
#include <gtest/gtest.h>

#include <algorithm>

#include "engine/engine.h"
#include "engine/network/tap_device.h"
#include "tests/engine/engine_fixture.h"
#include "tests/support/network_namespace.h"

namespace fe::engine {
namespace {

using test::EngineFixture;

bool Mentions(const RecoveryReport& report, const std::string& text) {
  return std::any_of(report.actions.begin(), report.actions.end(),
                     [&](const std::string& action) { return action.find(text) != std::string::npos; });
}

class RecoveryTapTest : public fe::test::ScratchTest {
 protected:
  void SetUp() override {
    if (std::string why = network::TapUnavailableReason(); !why.empty()) GTEST_SKIP() << why;
    FE_SCRATCH_DIR(scratch, fe::test::ScratchFs::kXfs);
    scratch_ = scratch;
  }
  std::string scratch_;
  EngineFixture fixture_;
};

TEST_F(RecoveryTapTest, TapsOfVmsThatAreNotRunningAreRemovedAndARunningVmKeepsItsTap) {
  std::string failure = fe::test::RunInNewNetworkNamespace([&] {
    fixture_.manage_taps = true;
    FE_ASSERT_OK(fixture_.Init(scratch_));
    Engine& engine = fixture_.engine();
    CreateRequest request;
    request.name = "alive";
    request.hypervisor = "cloud-hypervisor";
    request.import_dir = fixture_.template_dir();
    request.state = InstanceState::kStopped;
    FE_ASSERT_OK(engine.Create(request));
    Result<Instance> alive = engine.Start("alive");
    FE_ASSERT_OK(alive);
    ASSERT_TRUE(network::NetworkDeviceExists(alive->identity.tap_device));
    Result<Instance> standby = fixture_.ImportTemplate("standby");
    FE_ASSERT_OK(standby);
    Result<Instance> lost = fixture_.ImportTemplate("lost");
    FE_ASSERT_OK(lost);

    fixture_.Close();  // the crash; then what it left behind:
    Instance running = *lost;
    running.state = InstanceState::kRunning;
    running.process = vm::ProcessRecord{999999, 1, "/tmp/none.sock"};
    FE_ASSERT_OK(
        fe::test::WriteFile(fixture_.MetadataDir(lost->id) + "/instance.json", InstanceToJson(running).dump()));
    Result<std::unique_ptr<network::NetworkAllocator>> allocator =
        network::NetworkAllocator::Open(fixture_.NetworkDir(), DefaultNetworkPool());
    FE_ASSERT_OK(allocator);
    Result<hypervisor::NetworkIdentity> orphan = (*allocator)->Allocate("i-00000000000000cc");
    FE_ASSERT_OK(orphan);
    allocator->reset();
    for (const std::string& tap : {standby->identity.tap_device, lost->identity.tap_device, orphan->tap_device}) {
      FE_ASSERT_OK(network::CreateTap(tap, ""));
    }

    FE_ASSERT_OK(fixture_.Open());
    const RecoveryReport& report = fixture_.engine().recovery();
    for (const std::string& tap : {standby->identity.tap_device, lost->identity.tap_device, orphan->tap_device}) {
      EXPECT_FALSE(network::NetworkDeviceExists(tap)) << tap;
      EXPECT_TRUE(Mentions(report, "removed TAP " + tap)) << tap;
    }
    EXPECT_TRUE(network::NetworkDeviceExists(alive->identity.tap_device));
    FE_ASSERT_OK(fixture_.engine().Stop("alive"));
    EXPECT_FALSE(network::NetworkDeviceExists(alive->identity.tap_device));
  });
  EXPECT_EQ(failure, "");
}

}  // namespace
}  // namespace fe::engine
