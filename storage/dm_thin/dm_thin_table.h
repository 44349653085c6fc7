// The text the kernel's thin-pool and thin targets take: table lines, pool messages and device names.
// Pure string building, no kernel access (see dm_thin_device.h for that).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "base/status.h"

namespace fe::storage::dm_thin {

// Thin device ids are 24 bits wide in dm-thin's metadata.
inline constexpr uint32_t kMaxThinId = (1u << 24) - 1;
// Device-mapper names are at most 127 characters (DM_NAME_LEN includes the NUL).
inline constexpr size_t kMaxDmNameLength = 127;

// One line of a device-mapper table, "<start> <length> <target> <params>", in 512-byte sectors.
struct TableLine {
  uint64_t start = 0;
  uint64_t sectors = 0;
  std::string target;
  std::string params;
  std::string ToString() const;  // as `dmsetup table` prints it
};

struct PoolGeometry {
  std::string metadata_device;  // path or "major:minor"
  std::string data_device;
  uint64_t data_device_sectors = 0;
  uint32_t block_size_sectors = 0;
  uint64_t low_water_mark_blocks = 0;
};

// Data blocks the pool will have: the data device rounded down to whole blocks.
uint64_t PoolDataBlocks(const PoolGeometry& geometry);

// "0 <data sectors> thin-pool <metadata dev> <data dev> <block size> <low water mark>", the length
// rounded down to whole blocks. Block zeroing stays on: a new thin block must never show another
// volume's old data.
TableLine ThinPoolTable(const PoolGeometry& geometry);

// "0 <sectors> thin <pool dev> <thin id>"; `pool_device` is "major:minor" or a path.
TableLine ThinTable(const std::string& pool_device, uint32_t thin_id, uint64_t sectors);

// Messages to the pool (sent to sector 0).
std::string CreateThinMessage(uint32_t thin_id);
std::string CreateSnapMessage(uint32_t thin_id, uint32_t origin_id);
std::string DeleteMessage(uint32_t thin_id);

// A name device-mapper accepts: 1..127 characters, printable ASCII, no '/', not "." or "..".
Status ValidateDmName(std::string_view name);

// The dm name of a volume's thin device: "<pool>-<volume>", node /dev/mapper/<pool>-<volume>.
// InvalidArgument when it would exceed kMaxDmNameLength.
Result<std::string> ThinDeviceName(std::string_view pool, std::string_view volume);

// "/dev/mapper/<name>"
std::string MapperPath(std::string_view name);

}  // namespace fe::storage::dm_thin
