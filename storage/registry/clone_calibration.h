// What one clone costs with each mechanism a data root offers, measured at start: the numbers behind
// auto's btrfs snapshot/reflink crossover, and shown by `GET /v1/storage` and `forkctl storage probe`.
//
// Each mechanism's own backend (the code that serves forks) clones calibration trees of 4 KiB files
// under <root>/.forkengine-calibration/<mechanism>/: a small and a large tree for reflink and copy (a
// clone costs a fixed part plus a part per entry, and two sizes tell them apart), the large one for
// the btrfs snapshot. Each clone runs five times and the fastest counts: a clone measures in
// milliseconds, and one stalled by a transaction commit or writeback must not decide for the
// daemon's lifetime. Everything made is removed again, and a calibration a crash interrupted is cleaned up by
// the next one. dm-thin is not timed here: a thin volume needs a filesystem made on it first, which
// costs more than all of this; its clones' times are in every fork's report.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "base/status.h"

namespace fe::storage::registry {

// Where under the root the calibration works: never a volume, and no reason to think the root in use.
inline constexpr char kCalibrationDirectory[] = ".forkengine-calibration";

// However the clones measured, trees of this many entries are snapshotted: reflinking them costs
// tens of milliseconds where a snapshot costs a few, which bounds what a misleading calibration costs.
inline constexpr size_t kMaxCrossoverEntries = 1000;

struct MeasuredClone {
  std::string mechanism;  // "btrfs-snapshot", "reflink" or "copy"
  size_t entries = 0;     // files and directories of the tree cloned
  uint64_t bytes = 0;     // file data of the tree
  int64_t clone_us = 0;   // the fastest of 5 clones (up to 15 while a larger tree was not dearer)
};

struct CloneCalibration {
  std::vector<MeasuredClone> clones = {};
  // Entries below which a reflinked tree clones faster than a btrfs snapshot, fitted from the clones
  // (reflink: fixed + per-entry cost, against the snapshot's) and at most kMaxCrossoverEntries;
  // nullopt unless the root is on btrfs, or when the fit failed.
  std::optional<size_t> btrfs_crossover_entries;
  int64_t took_us = 0;  // the whole calibration, trees made and removed included
};

// Calibrates under `root` (made if missing), with the mechanisms its filesystem offers. Fails naming
// the path when a tree cannot be made or cloned; the caller then falls back to the fixed crossover.
Result<CloneCalibration> CalibrateCloneCosts(const std::string& root);

// The crossover from measured clones: reflink's fixed and per-entry cost through its two trees (the
// smallest and largest entry counts), set against the btrfs snapshot's cost; rounded up, clamped to
// [0, kMaxCrossoverEntries]. nullopt without those three clones or when the larger tree's reflink
// was not the dearer (noise: no per-entry cost to fit).
std::optional<size_t> FitBtrfsCrossover(const std::vector<MeasuredClone>& clones);

// {clones: [{mechanism, entries, bytes, clone_us}], btrfs_crossover_entries (or null), took_us}: the
// `measured_costs` of `GET /v1/storage` and of `forkctl storage probe --json`.
nlohmann::json ToJson(const CloneCalibration& calibration);

}  // namespace fe::storage::registry
