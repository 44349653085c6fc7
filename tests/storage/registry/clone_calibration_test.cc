// Clone calibration on real filesystems: what each root offers is timed with the backends' own code,
// nothing is left behind (also of a calibration a crash interrupted), and auto's btrfs crossover
// comes from the measurement.
#include "storage/registry/clone_calibration.h"

#include <btrfsutil.h>
#include <sys/stat.h>

#include <set>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "storage/registry/backend_selection.h"
#include "tests/support/file_util.h"
#include "tests/support/scratch.h"

namespace fe::storage::registry {
namespace {

using test::ScratchFs;

bool Exists(const std::string& path) {
  struct stat st;
  return ::lstat(path.c_str(), &st) == 0;
}

CloneCalibration Calibrate(const std::string& root) {
  Result<CloneCalibration> calibration = CalibrateCloneCosts(root);
  EXPECT_TRUE(calibration.ok()) << calibration.status().ToString();
  return calibration.ok() ? *calibration : CloneCalibration{};
}

std::set<std::string> Mechanisms(const CloneCalibration& calibration) {
  std::set<std::string> names;
  for (const MeasuredClone& clone : calibration.clones) {
    EXPECT_GT(clone.clone_us, 0) << clone.mechanism;
    EXPECT_GT(clone.entries, 0u);
    EXPECT_EQ(clone.bytes % 4096, 0u);
    names.insert(clone.mechanism);
  }
  return names;
}

class CloneCalibrationTest : public test::ScratchTest {};

TEST_F(CloneCalibrationTest, XfsTimesReflinkAndCopyOnTwoTreeSizesAndLeavesNothing) {
  FE_SCRATCH_DIR(dir, ScratchFs::kXfs);
  const CloneCalibration calibration = Calibrate(dir);
  EXPECT_EQ(Mechanisms(calibration), (std::set<std::string>{"reflink", "copy"}));
  EXPECT_EQ(calibration.clones.size(), 4u);  // a small and a large tree each
  EXPECT_FALSE(calibration.btrfs_crossover_entries.has_value());
  EXPECT_GT(calibration.took_us, 0);
  EXPECT_FALSE(Exists(dir + "/.forkengine-calibration"));
  const nlohmann::json json = ToJson(calibration);
  EXPECT_EQ(json["clones"].size(), 4u);
  EXPECT_TRUE(json["btrfs_crossover_entries"].is_null());
}

TEST_F(CloneCalibrationTest, Ext4OffersOnlyTheCopyAndAMissingRootIsMade) {
  FE_SCRATCH_DIR(dir, ScratchFs::kExt4);
  // forkd calibrates before the backend first opens its root, which may not exist yet.
  const CloneCalibration calibration = Calibrate(dir + "/volumes");
  EXPECT_EQ(Mechanisms(calibration), (std::set<std::string>{"copy"}));
  EXPECT_TRUE(test::ListDir(dir + "/volumes")->empty()) << "nothing of the calibration is left";
}

TEST_F(CloneCalibrationTest, ACalibrationLeftByACrashDoesNotMakeTheRootLookUsedByAnotherBackend) {
  FE_SCRATCH_DIR(dir, ScratchFs::kExt4);
  ASSERT_EQ(::mkdir((dir + "/" + kCalibrationDirectory).c_str(), 0700), 0);
  EXPECT_TRUE(ProbeHost(dir, false).root_free_for_thin);
  ASSERT_EQ(::mkdir((dir + "/instance-volume").c_str(), 0700), 0);
  EXPECT_FALSE(ProbeHost(dir, false).root_free_for_thin);
}

TEST_F(CloneCalibrationTest, BtrfsTimesTheSnapshotAndFitsTheCrossoverFromTheMeasurement) {
  FE_SCRATCH_DIR(dir, ScratchFs::kBtrfs);
  const CloneCalibration calibration = Calibrate(dir);
  EXPECT_EQ(Mechanisms(calibration), (std::set<std::string>{"btrfs-snapshot", "reflink", "copy"}));
  // The large tree has 7.5 times the small one's entries: its reflink costs clearly more, so a
  // per-entry cost and a crossover are fitted.
  ASSERT_TRUE(calibration.btrfs_crossover_entries.has_value());
  EXPECT_LE(*calibration.btrfs_crossover_entries, kMaxCrossoverEntries);
  EXPECT_FALSE(Exists(dir + "/.forkengine-calibration"));
}

TEST_F(CloneCalibrationTest, WhatAnInterruptedCalibrationLeftIsRemovedSubvolumesIncluded) {
  FE_SCRATCH_DIR(dir, ScratchFs::kBtrfs);
  // As a kill -9 mid-calibration leaves them: a source subvolume with a snapshot clone, and a tree.
  const std::string top = dir + "/.forkengine-calibration";
  ASSERT_EQ(::mkdir(top.c_str(), 0700), 0);
  ASSERT_EQ(::mkdir((top + "/btrfs-snapshot").c_str(), 0700), 0);
  ASSERT_EQ(btrfs_util_create_subvolume((top + "/btrfs-snapshot/tree-68").c_str(), 0, nullptr, nullptr), BTRFS_UTIL_OK);
  FE_ASSERT_OK(test::WriteFile(top + "/btrfs-snapshot/tree-68/f", "x"));
  ASSERT_EQ(btrfs_util_create_snapshot((top + "/btrfs-snapshot/tree-68").c_str(),
                                       (top + "/btrfs-snapshot/tree-68-clone-0").c_str(), 0, nullptr, nullptr),
            BTRFS_UTIL_OK);
  ASSERT_EQ(::mkdir((top + "/copy").c_str(), 0700), 0);
  ASSERT_EQ(::mkdir((top + "/copy/tree-9").c_str(), 0700), 0);
  FE_ASSERT_OK(test::WriteFile(top + "/copy/tree-9/f", "x"));
  // A mechanism this root no longer offers.
  ASSERT_EQ(::mkdir((top + "/retired").c_str(), 0700), 0);

  const CloneCalibration calibration = Calibrate(dir);
  EXPECT_EQ(calibration.clones.size(), 5u);
  EXPECT_FALSE(Exists(top));
}

TEST_F(CloneCalibrationTest, AutoOnBtrfsUsesTheMeasuredCrossoverAndSaysSo) {
  FE_SCRATCH_DIR(dir, ScratchFs::kBtrfs);
  StorageConfig config;
  config.root = dir + "/root";
  config.calibration = CloneCalibration{.btrfs_crossover_entries = 7};
  Result<std::unique_ptr<Backend>> measured = OpenBackend(config);
  ASSERT_TRUE(measured.ok()) << measured.status().ToString();
  EXPECT_NE((*measured)->SelectionReason().find("under 7 entries, measured on this root at start"), std::string::npos)
      << (*measured)->SelectionReason();

  config.calibration.reset();
  Result<std::unique_ptr<Backend>> fixed = OpenBackend(config);
  ASSERT_TRUE(fixed.ok()) << fixed.status().ToString();
  EXPECT_NE((*fixed)->SelectionReason().find("under " + std::to_string(kBtrfsSnapshotCrossoverEntries) +
                                             " entries, the fixed crossover"),
            std::string::npos)
      << (*fixed)->SelectionReason();
}

MeasuredClone Clone(std::string mechanism, size_t entries, int64_t us) {
  return {.mechanism = std::move(mechanism), .entries = entries, .bytes = 0, .clone_us = us};
}

TEST(FitBtrfsCrossoverTest, ReflinksFixedAndPerEntryCostMeetTheSnapshotsCost) {
  // reflink: 9 entries 1000 us, 68 entries 3000 us -> 33.9 us per entry plus 695 us; the snapshot's
  // 2000 us is reached at 38.5 entries.
  EXPECT_EQ(FitBtrfsCrossover({Clone("btrfs-snapshot", 68, 2000), Clone("reflink", 9, 1000), Clone("reflink", 68, 3000),
                               Clone("copy", 68, 9000)}),
            std::optional<size_t>(39));
}

TEST(FitBtrfsCrossoverTest, ASnapshotCheaperThanReflinksFixedCostSnapshotsEverything) {
  EXPECT_EQ(
      FitBtrfsCrossover({Clone("btrfs-snapshot", 68, 500), Clone("reflink", 9, 1000), Clone("reflink", 68, 3000)}),
      std::optional<size_t>(0));
}

TEST(FitBtrfsCrossoverTest, AStalledSnapshotIsBoundedAndNoiseOrMissingClonesFitNothing) {
  EXPECT_EQ(
      FitBtrfsCrossover({Clone("btrfs-snapshot", 68, 900000), Clone("reflink", 9, 1000), Clone("reflink", 68, 3000)}),
      std::optional<size_t>(kMaxCrossoverEntries));
  EXPECT_EQ(
      FitBtrfsCrossover({Clone("btrfs-snapshot", 68, 2000), Clone("reflink", 9, 3000), Clone("reflink", 68, 2900)}),
      std::nullopt)
      << "the larger tree's reflink was the cheaper: noise, no per-entry cost";
  EXPECT_EQ(FitBtrfsCrossover({Clone("reflink", 9, 1000), Clone("reflink", 68, 3000)}), std::nullopt);
  EXPECT_EQ(FitBtrfsCrossover({Clone("btrfs-snapshot", 68, 2000), Clone("reflink", 9, 1000)}), std::nullopt);
}

TEST_F(CloneCalibrationTest, AnUnwritableRootFailsNamingThePath) {
  FE_SCRATCH_DIR(dir, ScratchFs::kExt4);
  FE_ASSERT_OK(test::WriteFile(dir + "/.forkengine-calibration", "a file in the way"));
  Result<CloneCalibration> calibration = CalibrateCloneCosts(dir);
  ASSERT_FALSE(calibration.ok());
  EXPECT_NE(calibration.status().message().find(dir + "/.forkengine-calibration"), std::string::npos)
      << calibration.status().ToString();
}

}  // namespace
}  // namespace fe::storage::registry
