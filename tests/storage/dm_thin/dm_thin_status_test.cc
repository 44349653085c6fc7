// Parsing thin-pool / thin status lines and the fill-threshold decision.
#include "storage/dm_thin/dm_thin_status.h"

#include <gtest/gtest.h>

namespace fe::storage::dm_thin {
namespace {

TEST(DmThinStatusTest, ParsesFullKernel61PoolStatus) {
  Result<PoolStatus> status =
      ParsePoolStatus("pool", "3 181/2048 128/1024 - rw discard_passdown queue_if_no_space - 1024");
  ASSERT_TRUE(status.ok()) << status.status().ToString();
  EXPECT_EQ(status->transaction_id, 3u);
  EXPECT_EQ(status->metadata_used, 181u);
  EXPECT_EQ(status->metadata_total, 2048u);
  EXPECT_EQ(status->data_used, 128u);
  EXPECT_EQ(status->data_total, 1024u);
  EXPECT_EQ(status->mode, PoolMode::kReadWrite);
  EXPECT_FALSE(status->needs_check);
  EXPECT_DOUBLE_EQ(status->DataFraction(), 0.125);
}

TEST(DmThinStatusTest, ParsesOldShortPoolStatus) {
  Result<PoolStatus> status = ParsePoolStatus("pool", "0 10/100 0/50");
  ASSERT_TRUE(status.ok()) << status.status().ToString();
  EXPECT_EQ(status->data_total, 50u);
  EXPECT_EQ(status->mode, PoolMode::kReadWrite);
}

TEST(DmThinStatusTest, ParsesReadOnlyNeedsCheckAndOutOfSpace) {
  Result<PoolStatus> ro = ParsePoolStatus("p", "1 5/10 5/10 - ro no_discard_passdown error_if_no_space needs_check 4");
  ASSERT_TRUE(ro.ok()) << ro.status().ToString();
  EXPECT_EQ(ro->mode, PoolMode::kReadOnly);
  EXPECT_TRUE(ro->needs_check);
  Result<PoolStatus> full =
      ParsePoolStatus("p", "1 5/10 10/10 7 out_of_data_space discard_passdown queue_if_no_space - 4");
  ASSERT_TRUE(full.ok()) << full.status().ToString();
  EXPECT_EQ(full->mode, PoolMode::kOutOfDataSpace);
}

TEST(DmThinStatusTest, FailedPoolIsAnErrorNamingThePool) {
  Result<PoolStatus> status = ParsePoolStatus("mypool", "Fail");
  ASSERT_FALSE(status.ok());
  EXPECT_EQ(status.status().code(), ErrorCode::kIo);
  EXPECT_NE(status.status().message().find("mypool"), std::string::npos);
}

TEST(DmThinStatusTest, MalformedPoolStatusSaysWhatIsWrong) {
  for (const char* params : {"", "1 2/3", "x 1/2 1/2", "1 12 1/2", "1 1/2 3/2", "1 1/2 1/2 - sideways"}) {
    Result<PoolStatus> status = ParsePoolStatus("p", params);
    EXPECT_FALSE(status.ok()) << params;
    EXPECT_NE(status.status().message().find("malformed"), std::string::npos) << status.status().message();
  }
}

TEST(DmThinStatusTest, ParsesThinStatus) {
  Result<ThinStatus> used = ParseThinStatus("p-a", "16384 32767");
  ASSERT_TRUE(used.ok()) << used.status().ToString();
  EXPECT_EQ(used->mapped_sectors, 16384u);
  EXPECT_EQ(used->highest_mapped_sector, 32767u);
  Result<ThinStatus> empty = ParseThinStatus("p-a", "0 -");
  ASSERT_TRUE(empty.ok()) << empty.status().ToString();
  EXPECT_EQ(empty->mapped_sectors, 0u);
  EXPECT_FALSE(empty->highest_mapped_sector.has_value());
  EXPECT_FALSE(ParseThinStatus("p-a", "Fail").ok());
  EXPECT_FALSE(ParseThinStatus("p-a", "12").ok());
}

PoolStatus Usage(uint64_t data_used, uint64_t metadata_used) {
  return PoolStatus{.metadata_used = metadata_used, .metadata_total = 1000, .data_used = data_used, .data_total = 1000};
}

TEST(DmThinStatusTest, FillAtOrBelowThresholdIsAccepted) {
  EXPECT_TRUE(CheckPoolFill("p", Usage(0, 0), 0.9).ok());
  EXPECT_TRUE(CheckPoolFill("p", Usage(900, 900), 0.9).ok());
}

TEST(DmThinStatusTest, DataAboveThresholdIsNoSpaceNamingPoolUsageAndThreshold) {
  Status status = CheckPoolFill("forkengine", Usage(901, 10), 0.9);
  ASSERT_EQ(status.code(), ErrorCode::kNoSpace);
  EXPECT_EQ(status.message(),
            "thin pool forkengine: data usage 90.1% (901/1000 blocks) is above the fill threshold 90.0%");
}

TEST(DmThinStatusTest, MetadataAboveThresholdIsNoSpace) {
  Status status = CheckPoolFill("p", Usage(10, 950), 0.9);
  ASSERT_EQ(status.code(), ErrorCode::kNoSpace);
  EXPECT_NE(status.message().find("metadata usage 95.0%"), std::string::npos) << status.message();
}

TEST(DmThinStatusTest, ReadOnlyOrOutOfSpacePoolIsRefusedWhateverTheUsage) {
  PoolStatus full = Usage(10, 10);
  full.mode = PoolMode::kOutOfDataSpace;
  EXPECT_EQ(CheckPoolFill("p", full, 0.9).code(), ErrorCode::kNoSpace);
  PoolStatus ro = Usage(10, 10);
  ro.mode = PoolMode::kReadOnly;
  EXPECT_EQ(CheckPoolFill("p", ro, 0.9).code(), ErrorCode::kIo);
  PoolStatus check = Usage(10, 10);
  check.needs_check = true;
  EXPECT_NE(CheckPoolFill("p", check, 0.9).message().find("needs a check"), std::string::npos);
}

}  // namespace
}  // namespace fe::storage::dm_thin
