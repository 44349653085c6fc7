// Table lines, pool messages and names for the thin-pool and thin targets.
#include "storage/dm_thin/dm_thin_table.h"

#include <gtest/gtest.h>

namespace fe::storage::dm_thin {
namespace {

TEST(DmThinTableTest, PoolTableRoundsDataDownToWholeBlocks) {
  PoolGeometry geometry{.metadata_device = "7:1",
                        .data_device = "/dev/loop2",
                        .data_device_sectors = 131072 + 100,  // 64 MiB and a partial block
                        .block_size_sectors = 128,
                        .low_water_mark_blocks = 102};
  EXPECT_EQ(PoolDataBlocks(geometry), 1024u);
  TableLine line = ThinPoolTable(geometry);
  EXPECT_EQ(line.ToString(), "0 131072 thin-pool 7:1 /dev/loop2 128 102");
}

TEST(DmThinTableTest, PoolWithoutBlockSizeHasNoBlocks) {
  PoolGeometry geometry;
  geometry.data_device_sectors = 1000;
  EXPECT_EQ(PoolDataBlocks(geometry), 0u);
}

TEST(DmThinTableTest, ThinTableNamesPoolAndId) {
  EXPECT_EQ(ThinTable("253:0", 42, 2097152).ToString(), "0 2097152 thin 253:0 42");
}

TEST(DmThinTableTest, Messages) {
  EXPECT_EQ(CreateThinMessage(0), "create_thin 0");
  EXPECT_EQ(CreateSnapMessage(7, 3), "create_snap 7 3");
  EXPECT_EQ(DeleteMessage(kMaxThinId), "delete 16777215");
}

TEST(DmThinTableTest, DeviceNameJoinsPoolAndVolume) {
  Result<std::string> name = ThinDeviceName("forkengine", "vm-1.a_b");
  ASSERT_TRUE(name.ok()) << name.status().ToString();
  EXPECT_EQ(*name, "forkengine-vm-1.a_b");
  EXPECT_EQ(MapperPath(*name), "/dev/mapper/forkengine-vm-1.a_b");
}

TEST(DmThinTableTest, DeviceNameTooLongIsRefusedWithBothNames) {
  const std::string volume(118, 'v');  // "forkengine-" + 118 = 129 characters
  Result<std::string> name = ThinDeviceName("forkengine", volume);
  ASSERT_FALSE(name.ok());
  EXPECT_EQ(name.status().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(name.status().message().find(volume), std::string::npos);
  EXPECT_NE(name.status().message().find("forkengine"), std::string::npos);
  EXPECT_TRUE(ThinDeviceName("forkengine", std::string(116, 'v')).ok());  // exactly 127
}

TEST(DmThinTableTest, DmNamesRejectSlashesSpacesAndDots) {
  EXPECT_TRUE(ValidateDmName("pool_1-x.y").ok());
  EXPECT_FALSE(ValidateDmName("").ok());
  EXPECT_FALSE(ValidateDmName("a/b").ok());
  EXPECT_FALSE(ValidateDmName("a b").ok());
  EXPECT_FALSE(ValidateDmName("..").ok());
  EXPECT_FALSE(ValidateDmName(std::string(128, 'p')).ok());
}

}  // namespace
}  // namespace fe::storage::dm_thin
