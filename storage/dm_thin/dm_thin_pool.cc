#include "storage/dm_thin/dm_thin_pool.h"

#include <optional>
#include <vector>

#include "storage/dm_thin/dm_thin_device.h"
#include "storage/dm_thin/dm_thin_loop.h"
#include "storage/dm_thin/dm_thin_table.h"

namespace fe::storage::dm_thin {
namespace {

Status CheckIsThinPool(const DeviceMapper& device_mapper, const std::string& name) {
  Result<std::vector<TableLine>> lines = device_mapper.TargetStatus(name);
  if (!lines.ok()) return lines.status();
  if (lines->size() != 1 || (*lines)[0].target != "thin-pool") {
    std::string targets;
    for (const TableLine& line : *lines) targets += (targets.empty() ? "" : ",") + line.target;
    return Status::InvalidArgument("device-mapper device " + name + " exists but is not a thin pool (targets: " +
                                   (targets.empty() ? "none" : targets) + ")");
  }
  return Status::Ok();
}

Status LoadPool(const DmThinConfig& config, const std::string& image_prefix, const DeviceMapper& device_mapper) {
  std::string metadata_device = config.metadata_device;
  std::string data_device = config.data_device;
  // Held until the pool table holds the loop devices; autoclear detaches them if loading fails.
  std::optional<AttachedLoop> metadata_loop, data_loop;
  if (data_device.empty()) {
    Result<AttachedLoop> metadata = AttachImage(image_prefix + ".metadata.img", config.metadata_size_bytes);
    if (!metadata.ok()) return metadata.status();
    metadata_loop = std::move(*metadata);
    Result<AttachedLoop> data = AttachImage(image_prefix + ".data.img", config.data_size_bytes);
    if (!data.ok()) return data.status();
    data_loop = std::move(*data);
    metadata_device = metadata_loop->device;
    data_device = data_loop->device;
  }
  Result<uint64_t> data_bytes = BlockDeviceBytes(data_device);
  if (!data_bytes.ok()) return data_bytes.status();
  PoolGeometry geometry{.metadata_device = metadata_device,
                        .data_device = data_device,
                        .data_device_sectors = *data_bytes / kSectorBytes,
                        .block_size_sectors = config.block_size_sectors};
  if (PoolDataBlocks(geometry) == 0) {
    return Status::InvalidArgument("data device " + data_device + " (" + std::to_string(*data_bytes) +
                                   " bytes) is smaller than one pool block");
  }
  geometry.low_water_mark_blocks = EffectiveLowWaterMark(config, PoolDataBlocks(geometry));
  return device_mapper.Create(config.pool_name, {ThinPoolTable(geometry)});
}

}  // namespace

Result<ThinPool> ThinPool::Activate(const DmThinConfig& config, const std::string& image_prefix,
                                    const DeviceMapper& device_mapper) {
  const std::string& name = config.pool_name;
  Result<DmDeviceInfo> info = device_mapper.Info(name);
  if (!info.ok()) return info.status();
  if (info->exists) {
    FE_RETURN_IF_ERROR(CheckIsThinPool(device_mapper, name));
  } else {
    FE_RETURN_IF_ERROR(LoadPool(config, image_prefix, device_mapper).Annotate("activate thin pool " + name));
    info = device_mapper.Info(name);
    if (!info.ok()) return info.status();
  }
  return ThinPool(device_mapper, name, info->DeviceNumber());
}

Result<PoolStatus> ThinPool::ReadStatus() const {
  Result<std::vector<TableLine>> lines = device_mapper_->TargetStatus(name_);
  if (!lines.ok()) return lines.status();
  if (lines->size() != 1) {
    return Status::Io("thin pool " + name_ + " has " + std::to_string(lines->size()) + " targets");
  }
  return ParsePoolStatus(name_, (*lines)[0].params);
}

Status ThinPool::Message(const std::string& message) const { return device_mapper_->Message(name_, message); }

Status ThinPool::Deactivate() const { return device_mapper_->Remove(name_); }

}  // namespace fe::storage::dm_thin
