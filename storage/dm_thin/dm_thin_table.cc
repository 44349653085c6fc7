#include "storage/dm_thin/dm_thin_table.h"

namespace fe::storage::dm_thin {

std::string TableLine::ToString() const {
  return std::to_string(start) + " " + std::to_string(sectors) + " " + target + " " + params;
}

uint64_t PoolDataBlocks(const PoolGeometry& geometry) {
  if (geometry.block_size_sectors == 0) return 0;
  return geometry.data_device_sectors / geometry.block_size_sectors;
}

TableLine ThinPoolTable(const PoolGeometry& geometry) {
  TableLine line;
  line.sectors = PoolDataBlocks(geometry) * geometry.block_size_sectors;
  line.target = "thin-pool";
  line.params = geometry.metadata_device + " " + geometry.data_device + " " +
                std::to_string(geometry.block_size_sectors) + " " + std::to_string(geometry.low_water_mark_blocks);
  return line;
}

TableLine ThinTable(const std::string& pool_device, uint32_t thin_id, uint64_t sectors) {
  TableLine line;
  line.sectors = sectors;
  line.target = "thin";
  line.params = pool_device + " " + std::to_string(thin_id);
  return line;
}

std::string CreateThinMessage(uint32_t thin_id) { return "create_thin " + std::to_string(thin_id); }

std::string CreateSnapMessage(uint32_t thin_id, uint32_t origin_id) {
  return "create_snap " + std::to_string(thin_id) + " " + std::to_string(origin_id);
}

std::string DeleteMessage(uint32_t thin_id) { return "delete " + std::to_string(thin_id); }

Status ValidateDmName(std::string_view name) {
  bool ok = !name.empty() && name.size() <= kMaxDmNameLength && name != "." && name != "..";
  for (char c : name) ok = ok && c > ' ' && c < 127 && c != '/';
  if (ok) return Status::Ok();
  return Status::InvalidArgument("invalid device-mapper name '" + std::string(name) + "': expected 1.." +
                                 std::to_string(kMaxDmNameLength) + " printable characters without '/'");
}

Result<std::string> ThinDeviceName(std::string_view pool, std::string_view volume) {
  std::string name = std::string(pool) + "-" + std::string(volume);
  if (name.size() > kMaxDmNameLength) {
    return Status::InvalidArgument("volume name '" + std::string(volume) + "' is too long for pool '" +
                                   std::string(pool) + "': the device name '" + name + "' would exceed " +
                                   std::to_string(kMaxDmNameLength) + " characters");
  }
  FE_RETURN_IF_ERROR(ValidateDmName(name));
  return name;
}

std::string MapperPath(std::string_view name) { return "/dev/mapper/" + std::string(name); }

}  // namespace fe::storage::dm_thin
