// Choosing the backend for a data root, once, by probing (not by guessing from names).
//
// The registered backends (backend_registry.h) are tried cheapest first; under "auto" the first that
// applies to the root serves it: dm-thin when a thin pool is configured, or when the root cannot
// reflink, device-mapper answers and the root holds no other backend's volumes (then on its default
// pool: loop devices over sparse images in <root>/.dm-thin); btrfs subvolume snapshots when the root
// is on btrfs (small trees are still reflinked, below the measured crossover); reflink when a real
// FICLONE works there; otherwise the sparse copy. Forcing a backend the host cannot
// support is an error when the backend is opened, never at the first clone.
#pragma once

#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "base/status.h"
#include "storage/backend.h"
#include "storage/dm_thin/dm_thin_config.h"
#include "storage/registry/clone_calibration.h"
#include "storage/tree/reflink_probe.h"

namespace fe::storage::registry {

// The choice that lets the probe decide.
inline constexpr std::string_view kAutoBackend = "auto";

// "auto" or the name of a registered backend; InvalidArgument listing the names otherwise.
Result<std::string> ParseBackendChoice(std::string_view text);

// Below this many entries a reflinked tree clones faster than a btrfs snapshot (forkbench --compare,
// README "Choosing a backend"): the fallback when no calibration measured it on the root itself.
constexpr size_t kBtrfsSnapshotCrossoverEntries = 40;

struct BackendDecision {
  std::string backend;  // a registered name, never "auto"
  std::string reason;
  bool forced = false;  // the configuration named it
};

struct StorageConfig {
  std::string root;
  std::string backend = std::string(kAutoBackend);
  // A configured thin pool (its data_root is `root`): "auto" then picks dm-thin.
  std::optional<dm_thin::DmThinConfig> thin_pool;
  // What dm-thin runs when it serves without a configured pool: the loop-backed default.
  dm_thin::DmThinConfig default_thin_pool;
  // Clone costs measured on the root (clone_calibration.h): auto's btrfs crossover comes from them.
  std::optional<CloneCalibration> calibration;
};

// What the host can do beyond the data root's filesystem.
struct HostFacts {
  bool thin_pool_configured = false;
  bool device_mapper = false;
  std::string device_mapper_reason;  // why device-mapper is unusable, when it is
  // The root holds nothing yet, or a dm-thin pool's state (.dm-thin): no volumes of another backend
  // that switching to dm-thin would strand.
  bool root_free_for_thin = false;
};

// The pure decision: what `choice` means for a root whose filesystem probed as `probe`.
Result<BackendDecision> DecideBackend(std::string_view choice, const tree::FilesystemProbe& probe,
                                      const HostFacts& host, const std::string& root);

// The host facts for `root` (the thin pool configured or not): asks device-mapper and looks at the root.
HostFacts ProbeHost(const std::string& root, bool thin_pool_configured);

// Whether "auto" picks dm-thin for `root` (see above): forkd then keeps no loop-mounted XFS pool there.
bool AutoPicksDmThin(const std::string& root);

// Probes the host and the root (created if missing), decides and opens the backend.
Result<std::unique_ptr<Backend>> OpenBackend(const StorageConfig& config);
Result<std::unique_ptr<Backend>> OpenBackend(const std::string& root, std::string_view choice);

}  // namespace fe::storage::registry
