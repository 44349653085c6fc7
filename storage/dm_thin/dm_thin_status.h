// Reading the thin-pool and thin status lines, and deciding whether the pool may take another volume.
// Pure parsing, no kernel access.
//
// thin-pool status (Documentation/admin-guide/device-mapper/thin-provisioning.rst):
//   <transaction id> <used metadata blocks>/<total metadata blocks> <used data blocks>/<total data
//   blocks> <held metadata root> ro|rw|out_of_data_space [no_]discard_passdown
//   [error|queue]_if_no_space needs_check|- <metadata low watermark>
// or "Fail" / "Error". Fields after the data blocks were added over kernel versions and are optional.
// thin status: "<nr mapped sectors> <highest mapped sector>" or "Fail".
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "base/status.h"

namespace fe::storage::dm_thin {

enum class PoolMode { kReadWrite, kReadOnly, kOutOfDataSpace };

struct PoolStatus {
  uint64_t transaction_id = 0;
  // 4 KiB metadata blocks. The kernel counts its metadata reserve (10% of the device, at most 4096
  // blocks) as used, so a new pool on a small metadata device already shows ~10%.
  uint64_t metadata_used = 0;
  uint64_t metadata_total = 0;
  uint64_t data_used = 0;  // data blocks of the pool's block size
  uint64_t data_total = 0;
  PoolMode mode = PoolMode::kReadWrite;
  bool needs_check = false;

  double DataFraction() const;  // used / total, 0 when total is 0
  double MetadataFraction() const;
};

// Parses the params of a thin-pool status line. `pool` names the pool in errors.
Result<PoolStatus> ParsePoolStatus(std::string_view pool, std::string_view params);

struct ThinStatus {
  uint64_t mapped_sectors = 0;
  std::optional<uint64_t> highest_mapped_sector;  // none when nothing is mapped
};

// Parses the params of a thin status line. `device` names the thin device in errors.
Result<ThinStatus> ParseThinStatus(std::string_view device, std::string_view params);

// Ok when the pool may take another volume: it is read-write, needs no check, and neither its data
// nor its metadata usage is above `threshold` (a fraction). Otherwise kNoSpace (full) or kIo
// (read-only, needs_check), with a message naming the pool, the usage and the threshold.
Status CheckPoolFill(std::string_view pool, const PoolStatus& status, double threshold);

// Ok when writing `blocks` more data blocks keeps the pool's data usage at or below `threshold`;
// kNoSpace naming the pool, what `what` needs and what the pool has left below the threshold otherwise.
Status CheckPoolRoomFor(std::string_view pool, const PoolStatus& status, double threshold, uint64_t blocks,
                        std::string_view what);

}  // namespace fe::storage::dm_thin
