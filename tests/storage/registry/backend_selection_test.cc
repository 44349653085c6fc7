// Backend selection: the pure decision for every kind of host, and OpenBackend on real filesystems.
#include "storage/registry/backend_selection.h"

#include <gtest/gtest.h>

#include "tests/support/scratch.h"

namespace fe::storage::registry {
namespace {

tree::FilesystemProbe Probe(const std::string& filesystem, bool reflink) {
  return tree::FilesystemProbe{.filesystem = filesystem,
                               .magic = 0,
                               .reflink = reflink,
                               .reason = reflink ? "FICLONE worked" : "FICLONE: Operation not supported"};
}

std::string Decide(std::string choice, const tree::FilesystemProbe& probe, const HostFacts& host = {}) {
  Result<BackendDecision> decision = DecideBackend(choice, probe, host, "/data");
  EXPECT_TRUE(decision.ok()) << decision.status().ToString();
  return decision.ok() ? decision->backend : "auto";
}

TEST(BackendDecisionTest, AutoPicksTheCheapestMechanismOfEachFilesystem) {
  EXPECT_EQ(Decide("auto", Probe("btrfs", true)), "btrfs");
  EXPECT_EQ(Decide("auto", Probe("xfs", true)), "reflink");
  EXPECT_EQ(Decide("auto", Probe("ext4", false)), "copy");
}

TEST(BackendDecisionTest, AutoPicksDmThinWhenAPoolIsConfigured) {
  HostFacts host{.thin_pool_configured = true, .device_mapper = true, .device_mapper_reason = ""};
  EXPECT_EQ(Decide("auto", Probe("xfs", true), host), "dm-thin");
}

TEST(BackendDecisionTest, AutoPicksTheDefaultThinPoolWhereTheRootCannotReflinkAndHoldsNoOtherVolumes) {
  HostFacts thin;
  thin.device_mapper = true;
  thin.root_free_for_thin = true;
  EXPECT_EQ(Decide("auto", Probe("ext4", false), thin), "dm-thin");
  // Where a filesystem does better, or another backend's volumes are there already, it stays away.
  EXPECT_EQ(Decide("auto", Probe("xfs", true), thin), "reflink");
  EXPECT_EQ(Decide("auto", Probe("btrfs", true), thin), "btrfs");
  HostFacts occupied = thin;
  occupied.root_free_for_thin = false;
  EXPECT_EQ(Decide("auto", Probe("ext4", false), occupied), "copy");
  HostFacts no_device_mapper = thin;
  no_device_mapper.device_mapper = false;
  EXPECT_EQ(Decide("auto", Probe("ext4", false), no_device_mapper), "copy");
  Result<BackendDecision> decision = DecideBackend("auto", Probe("ext4", false), thin, "/data");
  FE_ASSERT_OK(decision);
  EXPECT_NE(decision->reason.find("/data/.dm-thin"), std::string::npos) << decision->reason;
  // Forced, it needs no configured pool either.
  EXPECT_EQ(Decide("dm-thin", Probe("xfs", true), thin), "dm-thin");
}

TEST(BackendDecisionTest, AutoOnExt4SaysWhyItCopies) {
  Result<BackendDecision> decision = DecideBackend("auto", Probe("ext4", false), {}, "/data");
  FE_ASSERT_OK(decision);
  EXPECT_NE(decision->reason.find("Operation not supported"), std::string::npos) << decision->reason;
}

TEST(BackendDecisionTest, ForcingWhatTheHostCannotDoIsAnErrorNamingTheRoot) {
  struct Case {
    std::string choice;
    tree::FilesystemProbe probe;
    HostFacts host;
    ErrorCode code;
  };
  const Case cases[] = {
      {"reflink", Probe("ext4", false), {}, ErrorCode::kUnsupported},
      {"btrfs", Probe("xfs", true), {}, ErrorCode::kUnsupported},
      {"dm-thin", Probe("xfs", true), {}, ErrorCode::kUnsupported},
      {"dm-thin",
       Probe("xfs", true),
       {.thin_pool_configured = true, .device_mapper = false, .device_mapper_reason = "no dm-mod"},
       ErrorCode::kUnsupported},
  };
  for (const Case& c : cases) {
    Result<BackendDecision> decision = DecideBackend(c.choice, c.probe, c.host, "/data");
    ASSERT_FALSE(decision.ok()) << c.choice;
    EXPECT_EQ(decision.status().code(), c.code) << decision.status().ToString();
  }
  Result<BackendDecision> reflink = DecideBackend("reflink", Probe("ext4", false), {}, "/data");
  EXPECT_NE(reflink.status().message().find("/data"), std::string::npos);
  Result<BackendDecision> thin = DecideBackend(
      "dm-thin", Probe("xfs", true),
      {.thin_pool_configured = true, .device_mapper = false, .device_mapper_reason = "no dm-mod"}, "/data");
  EXPECT_NE(thin.status().message().find("no dm-mod"), std::string::npos);
}

TEST(BackendDecisionTest, ChoicesRoundTripThroughTheirNames) {
  for (std::string choice : {"auto", "dm-thin", "btrfs", "reflink", "copy"}) {
    Result<std::string> parsed = ParseBackendChoice(choice);
    FE_ASSERT_OK(parsed);
    EXPECT_EQ(*parsed, choice);
  }
  EXPECT_EQ(ParseBackendChoice("zfs").status().code(), ErrorCode::kInvalidArgument);
}

class OpenBackendTest : public test::ScratchTest {};

TEST_F(OpenBackendTest, AutoOnRealFilesystemsOpensBtrfsReflinkAndCopy) {
  struct Case {
    test::ScratchFs fs;
    std::string_view backend;
  };
  for (const Case& c : {Case{test::ScratchFs::kBtrfs, "btrfs"}, Case{test::ScratchFs::kXfs, "reflink"},
                        Case{test::ScratchFs::kExt4, "copy"}}) {
    FE_SCRATCH_DIR(dir, c.fs);
    Result<std::unique_ptr<Backend>> backend = OpenBackend(dir + "/root", "auto");
    FE_ASSERT_OK(backend);
    EXPECT_EQ((*backend)->Name(), c.backend) << test::ScratchFsName(c.fs);
  }
}

TEST_F(OpenBackendTest, ForcingBtrfsOnXfsFailsAtOpenNotAtTheFirstClone) {
  FE_SCRATCH_DIR(dir, test::ScratchFs::kXfs);
  Result<std::unique_ptr<Backend>> backend = OpenBackend(dir + "/root", "btrfs");
  ASSERT_FALSE(backend.ok());
  EXPECT_EQ(backend.status().code(), ErrorCode::kUnsupported);
}

}  // namespace
}  // namespace fe::storage::registry
