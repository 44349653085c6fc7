#include "storage/dm_thin/dm_thin_config.h"

#include <algorithm>
#include <cmath>

#include "storage/dm_thin/dm_thin_table.h"

namespace fe::storage::dm_thin {
namespace {

Status InvalidConfig(const std::string& what) { return Status::InvalidArgument("dm-thin configuration: " + what); }

}  // namespace

Status ValidateDmThinConfig(const DmThinConfig& config) {
  if (config.data_root.empty()) return InvalidConfig("data_root is empty");
  FE_RETURN_IF_ERROR(ValidateDmName(config.pool_name).Annotate("dm-thin configuration: pool_name"));
  if (config.data_device.empty() != config.metadata_device.empty()) {
    return InvalidConfig("data_device ('" + config.data_device + "') and metadata_device ('" + config.metadata_device +
                         "') must be given together or not at all");
  }
  const uint32_t block = config.block_size_sectors;
  if (block < kMinThinBlockSectors || block > kMaxThinBlockSectors || block % kMinThinBlockSectors != 0) {
    return InvalidConfig("block_size_sectors " + std::to_string(block) + " is not a multiple of " +
                         std::to_string(kMinThinBlockSectors) + " between " + std::to_string(kMinThinBlockSectors) +
                         " and " + std::to_string(kMaxThinBlockSectors));
  }
  if (config.data_device.empty()) {
    const uint64_t block_bytes = uint64_t{block} * kSectorBytes;
    if (config.data_size_bytes < block_bytes) {
      return InvalidConfig("data_size_bytes " + std::to_string(config.data_size_bytes) +
                           " is smaller than one block (" + std::to_string(block_bytes) + " bytes)");
    }
    // 2 MiB is the smallest metadata device dm-thin accepts comfortably; 16 GiB is its maximum.
    if (config.metadata_size_bytes < (2ull << 20) || config.metadata_size_bytes > (16ull << 30)) {
      return InvalidConfig("metadata_size_bytes " + std::to_string(config.metadata_size_bytes) +
                           " is outside 2 MiB..16 GiB");
    }
  }
  if (!(config.fill_threshold > 0.0 && config.fill_threshold <= 1.0)) {
    return InvalidConfig("fill_threshold " + std::to_string(config.fill_threshold) + " is outside (0, 1]");
  }
  if (config.volume_size_bytes == 0 || config.volume_size_bytes % kSectorBytes != 0) {
    return InvalidConfig("volume_size_bytes " + std::to_string(config.volume_size_bytes) +
                         " is not a positive multiple of 512");
  }
  return Status::Ok();
}

uint64_t ImportVolumeBytes(const DmThinConfig& config, uint64_t logical_bytes) {
  const uint64_t block_bytes = uint64_t{config.block_size_sectors} * kSectorBytes;
  const uint64_t wanted = logical_bytes + logical_bytes / 4 + (256ull << 20);
  const uint64_t rounded = (wanted + block_bytes - 1) / block_bytes * block_bytes;
  return std::max(config.volume_size_bytes, rounded);
}

uint64_t EffectiveLowWaterMark(const DmThinConfig& config, uint64_t data_blocks) {
  if (config.low_water_mark_blocks != 0) return config.low_water_mark_blocks;
  const double left = static_cast<double>(data_blocks) * (1.0 - config.fill_threshold);
  return static_cast<uint64_t>(std::llround(left));  // 1 - 0.9 is not exactly 0.1
}

}  // namespace fe::storage::dm_thin
