// Configuration checks and the derived low-water mark.
#include "storage/dm_thin/dm_thin_config.h"

#include <gtest/gtest.h>

namespace fe::storage::dm_thin {
namespace {

DmThinConfig Valid() {
  DmThinConfig config;
  config.data_root = "/var/lib/forkengine";
  return config;
}

TEST(DmThinConfigTest, DefaultsAreValid) { EXPECT_TRUE(ValidateDmThinConfig(Valid()).ok()); }

TEST(DmThinConfigTest, EachBadFieldIsNamed) {
  struct Case {
    const char* field;
    void (*spoil)(DmThinConfig&);
  };
  const Case cases[] = {
      {"data_root", [](DmThinConfig& c) { c.data_root.clear(); }},
      {"pool_name", [](DmThinConfig& c) { c.pool_name = "a/b"; }},
      {"metadata_device", [](DmThinConfig& c) { c.data_device = "/dev/sdb"; }},
      {"block_size_sectors", [](DmThinConfig& c) { c.block_size_sectors = 100; }},
      {"block_size_sectors", [](DmThinConfig& c) { c.block_size_sectors = 64; }},
      {"data_size_bytes", [](DmThinConfig& c) { c.data_size_bytes = 4096; }},
      {"metadata_size_bytes", [](DmThinConfig& c) { c.metadata_size_bytes = 1 << 20; }},
      {"fill_threshold", [](DmThinConfig& c) { c.fill_threshold = 0; }},
      {"fill_threshold", [](DmThinConfig& c) { c.fill_threshold = 1.5; }},
      {"volume_size_bytes", [](DmThinConfig& c) { c.volume_size_bytes = 1000; }},
  };
  for (const Case& test : cases) {
    DmThinConfig config = Valid();
    test.spoil(config);
    Status status = ValidateDmThinConfig(config);
    EXPECT_EQ(status.code(), ErrorCode::kInvalidArgument) << test.field;
    EXPECT_NE(status.message().find(test.field), std::string::npos) << status.message();
  }
}

TEST(DmThinConfigTest, ConfiguredDevicesNeedNoImageSizes) {
  DmThinConfig config = Valid();
  config.data_device = "/dev/vdb";
  config.metadata_device = "/dev/vdc";
  config.data_size_bytes = 0;
  config.metadata_size_bytes = 0;
  EXPECT_TRUE(ValidateDmThinConfig(config).ok());
}

TEST(DmThinConfigTest, LowWaterMarkDefaultsToBlocksLeftAtTheThreshold) {
  DmThinConfig config = Valid();
  config.fill_threshold = 0.9;
  EXPECT_EQ(EffectiveLowWaterMark(config, 1000), 100u);
  config.low_water_mark_blocks = 7;
  EXPECT_EQ(EffectiveLowWaterMark(config, 1000), 7u);
}

}  // namespace
}  // namespace fe::storage::dm_thin
