// Configuration of the dm-thin backend, and the pure checks and derivations made from it.
//
// Layout under the data root (see dm_thin_backend.h):
//   <root>/<volume>/                      the volume's directory (configs, snapshot files)
//   <root>/.dm-thin/<pool>.json           the ledger: thin ids and in-flight operations
//   <root>/.dm-thin/<pool>.data.img       loop-backed default data device (sparse)
//   <root>/.dm-thin/<pool>.metadata.img   loop-backed default metadata device (sparse)
#pragma once

#include <cstdint>
#include <string>

#include "base/status.h"

namespace fe::storage::dm_thin {

inline constexpr uint64_t kSectorBytes = 512;
// dm-thin accepts data block sizes that are multiples of 64 KiB between 64 KiB and 1 GiB.
inline constexpr uint32_t kMinThinBlockSectors = 128;
inline constexpr uint32_t kMaxThinBlockSectors = 2097152;

struct DmThinConfig {
  std::string data_root;
  // Device-mapper name of the pool; volumes appear as /dev/mapper/<pool_name>-<volume>. Names are
  // global to the kernel, so two data roots on one host need two pool names.
  std::string pool_name = "forkengine";
  // Existing block devices for the pool. Both empty: loop devices over sparse files in the data root
  // (the embedded default), sized below. A metadata device whose first 4 KiB are zero is formatted by
  // the kernel as a new pool; any other is opened as an existing pool.
  std::string data_device;
  std::string metadata_device;
  uint64_t data_size_bytes = 64ull << 30;       // loop-backed default only
  uint64_t metadata_size_bytes = 256ull << 20;  // loop-backed default only
  uint32_t block_size_sectors = 128;            // 64 KiB
  // Free data blocks below which the kernel raises a dm event. 0: the blocks left at fill_threshold.
  uint64_t low_water_mark_blocks = 0;
  // Clones (and creates) are refused once data or metadata usage is above this fraction.
  double fill_threshold = 0.90;
  // Virtual size of a new thin volume; an import gets more when its files need it (ImportVolumeBytes).
  uint64_t volume_size_bytes = 20ull << 30;
};

// Checks ranges and combinations; the message names the offending field and value.
Status ValidateDmThinConfig(const DmThinConfig& config);

// The virtual size of a volume importing files of `logical_bytes` (sizes, holes included): room for
// every file to fill its holes and be rewritten once more by a quarter (a guest's next snapshot), plus
// the filesystem's own 256 MiB, in whole thin blocks; never below config.volume_size_bytes. A thin
// volume's size costs no pool space until written, so generosity here is free.
uint64_t ImportVolumeBytes(const DmThinConfig& config, uint64_t logical_bytes);

// The low-water mark actually used for a pool of `data_blocks` blocks.
uint64_t EffectiveLowWaterMark(const DmThinConfig& config, uint64_t data_blocks);

}  // namespace fe::storage::dm_thin
