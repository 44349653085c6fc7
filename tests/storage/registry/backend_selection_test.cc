// Backend selection: the pure decision for every kind of host, and OpenBackend on real filesystems.
#include "storage/registry/backend_selection.h"

#include <gtest/gtest.h>

#include "tests/support/scratch.h"

namespace fe::storage {
namespace {

FilesystemProbe Probe(const std::string& filesystem, bool reflink) {
  return FilesystemProbe{.filesystem = filesystem, .magic = 0, .reflink = reflink,
                         .reason = reflink ? "FICLONE worked" : "FICLONE: Operation not supported"};
}

BackendChoice Decide(BackendChoice choice, const FilesystemProbe& probe, const HostFacts& host = {}) {
  Result<BackendDecision> decision = DecideBackend(choice, probe, host, "/data");
  EXPECT_TRUE(decision.ok()) << decision.status().ToString();
  return decision.ok() ? decision->backend : BackendChoice::kAuto;
}

TEST(BackendDecisionTest, AutoPicksTheCheapestMechanismOfEachFilesystem) {
  EXPECT_EQ(Decide(BackendChoice::kAuto, Probe("btrfs", true)), BackendChoice::kBtrfs);
  EXPECT_EQ(Decide(BackendChoice::kAuto, Probe("xfs", true)), BackendChoice::kReflink);
  EXPECT_EQ(Decide(BackendChoice::kAuto, Probe("ext4", false)), BackendChoice::kCopy);
}

TEST(BackendDecisionTest, AutoPicksDmThinWhenAPoolIsConfigured) {
  HostFacts host{.thin_pool_configured = true, .device_mapper = true, .device_mapper_reason = ""};
  EXPECT_EQ(Decide(BackendChoice::kAuto, Probe("xfs", true), host), BackendChoice::kDmThin);
}

TEST(BackendDecisionTest, AutoOnExt4SaysWhyItCopies) {
  Result<BackendDecision> decision = DecideBackend(BackendChoice::kAuto, Probe("ext4", false), {}, "/data");
  FE_ASSERT_OK(decision);
  EXPECT_NE(decision->reason.find("Operation not supported"), std::string::npos) << decision->reason;
}

TEST(BackendDecisionTest, ForcingWhatTheHostCannotDoIsAnErrorNamingTheRoot) {
  struct Case {
    BackendChoice choice;
    FilesystemProbe probe;
    HostFacts host;
    ErrorCode code;
  };
  const Case cases[] = {
      {BackendChoice::kReflink, Probe("ext4", false), {}, ErrorCode::kUnsupported},
      {BackendChoice::kBtrfs, Probe("xfs", true), {}, ErrorCode::kUnsupported},
      {BackendChoice::kDmThin, Probe("xfs", true), {}, ErrorCode::kInvalidArgument},
      {BackendChoice::kDmThin, Probe("xfs", true), {.thin_pool_configured = true, .device_mapper = false,
                                                    .device_mapper_reason = "no dm-mod"}, ErrorCode::kUnsupported},
  };
  for (const Case& c : cases) {
    Result<BackendDecision> decision = DecideBackend(c.choice, c.probe, c.host, "/data");
    ASSERT_FALSE(decision.ok()) << BackendChoiceName(c.choice);
    EXPECT_EQ(decision.status().code(), c.code) << decision.status().ToString();
  }
  Result<BackendDecision> reflink = DecideBackend(BackendChoice::kReflink, Probe("ext4", false), {}, "/data");
  EXPECT_NE(reflink.status().message().find("/data"), std::string::npos);
  Result<BackendDecision> thin = DecideBackend(BackendChoice::kDmThin, Probe("xfs", true),
                                               {.thin_pool_configured = true, .device_mapper = false,
                                                .device_mapper_reason = "no dm-mod"}, "/data");
  EXPECT_NE(thin.status().message().find("no dm-mod"), std::string::npos);
}

TEST(BackendDecisionTest, ChoicesRoundTripThroughTheirNames) {
  for (BackendChoice choice : {BackendChoice::kAuto, BackendChoice::kDmThin, BackendChoice::kBtrfs,
                               BackendChoice::kReflink, BackendChoice::kCopy}) {
    Result<BackendChoice> parsed = ParseBackendChoice(BackendChoiceName(choice));
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
    Result<std::unique_ptr<Backend>> backend = OpenBackend(dir + "/root", BackendChoice::kAuto);
    FE_ASSERT_OK(backend);
    EXPECT_EQ((*backend)->Name(), c.backend) << test::ScratchFsName(c.fs);
  }
}

TEST_F(OpenBackendTest, ForcingBtrfsOnXfsFailsAtOpenNotAtTheFirstClone) {
  FE_SCRATCH_DIR(dir, test::ScratchFs::kXfs);
  Result<std::unique_ptr<Backend>> backend = OpenBackend(dir + "/root", BackendChoice::kBtrfs);
  ASSERT_FALSE(backend.ok());
  EXPECT_EQ(backend.status().code(), ErrorCode::kUnsupported);
}

}  // namespace
}  // namespace fe::storage
