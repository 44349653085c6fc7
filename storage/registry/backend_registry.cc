#include "storage/registry/backend_registry.h"

#include <array>

#include "storage/btrfs/btrfs_backend.h"
#include "storage/dm_thin/dm_thin_backend.h"
#include "storage/tree/tree_backend.h"

namespace fe::storage::registry {
namespace {

std::string Mode(const SelectionContext& context) { return context.forced ? "forced: " : "auto: "; }

// Under auto: a configured pool, or the default one where the root can do no better than copying.
Result<std::optional<std::string>> ProbeDmThin(const SelectionContext& context) {
  const HostFacts& host = context.host;
  const bool default_pool_fits =
      !context.probe.reflink && context.probe.filesystem != "btrfs" && host.root_free_for_thin;
  if (!context.forced && (!host.device_mapper || !(host.thin_pool_configured || default_pool_fits))) {
    return std::optional<std::string>();
  }
  if (!host.device_mapper) {
    return Status::Unsupported("storage backend dm-thin is not available on this host: " + host.device_mapper_reason);
  }
  if (host.thin_pool_configured) {
    return std::optional<std::string>(Mode(context) + "a thin pool is configured; clones are thin snapshots");
  }
  return std::optional<std::string>(
      Mode(context) +
      (context.probe.reflink ? "" : "the data root cannot reflink (" + context.probe.reason + ") and ") +
      "device-mapper answers: volumes are thin volumes of the loop-backed pool in " + context.root +
      "/.dm-thin, clones are thin snapshots");
}

Result<std::unique_ptr<Backend>> OpenDmThin(const StorageConfig& config, const tree::FilesystemProbe&,
                                            const BackendDecision&) {
  dm_thin::DmThinConfig thin = config.thin_pool.value_or(config.default_thin_pool);
  thin.data_root = config.root;
  FE_ASSIGN_OR_RETURN(std::unique_ptr<dm_thin::DmThinBackend> backend, dm_thin::OpenDmThinBackend(thin));
  return std::unique_ptr<Backend>(std::move(backend));
}

Result<std::optional<std::string>> ProbeBtrfs(const SelectionContext& context) {
  if (context.probe.filesystem != "btrfs") {
    if (!context.forced) return std::optional<std::string>();
    return Status::Unsupported("storage backend btrfs needs a btrfs data root; " + context.root + " is on " +
                               context.probe.filesystem);
  }
  if (context.forced) {
    return std::optional<std::string>("btrfs forced by configuration: every clone of a subvolume is a snapshot");
  }
  return std::optional<std::string>("auto: data root is on btrfs: subvolumes are snapshotted, small trees reflinked");
}

Result<std::unique_ptr<Backend>> OpenBtrfs(const StorageConfig& config, const tree::FilesystemProbe&,
                                           const BackendDecision& decision) {
  // Forced, every clone is a snapshot; under auto small trees are reflinked (faster below the crossover,
  // measured on this root where a calibration ran).
  size_t crossover = 0;
  std::string reason = decision.reason;
  if (!decision.forced) {
    const std::optional<size_t> measured =
        config.calibration ? config.calibration->btrfs_crossover_entries : std::nullopt;
    crossover = measured.value_or(kBtrfsSnapshotCrossoverEntries);
    reason += " (under " + std::to_string(crossover) + " entries, " +
              (measured ? "measured on this root at start" : "the fixed crossover: nothing measured") + ")";
  }
  FE_ASSIGN_OR_RETURN(std::unique_ptr<btrfs::BtrfsBackend> backend,
                      btrfs::BtrfsBackend::Open(config.root, reason, crossover));
  return std::unique_ptr<Backend>(std::move(backend));
}

Result<std::optional<std::string>> ProbeReflink(const SelectionContext& context) {
  if (!context.probe.reflink) {
    if (!context.forced) return std::optional<std::string>();
    return Status::Unsupported("storage backend reflink is not available on data root " + context.root + ": " +
                               context.probe.reason);
  }
  if (context.forced)
    return std::optional<std::string>("reflink forced by configuration (" + context.probe.reason + ")");
  return std::optional<std::string>("auto: " + context.probe.reason);
}

Result<std::unique_ptr<Backend>> OpenReflink(const StorageConfig& config, const tree::FilesystemProbe&,
                                             const BackendDecision& decision) {
  return tree::OpenTreeBackend(config.root, tree::DataMode::kReflink, decision.reason, true);
}

Result<std::optional<std::string>> ProbeCopy(const SelectionContext& context) {
  if (context.forced) return std::optional<std::string>("copy forced by configuration");
  return std::optional<std::string>("auto: no reflink (" + context.probe.reason + "): sparse copy");
}

Result<std::unique_ptr<Backend>> OpenCopy(const StorageConfig& config, const tree::FilesystemProbe& probe,
                                          const BackendDecision& decision) {
  return tree::OpenTreeBackend(config.root, tree::DataMode::kCopy, decision.reason, probe.reflink);
}

constexpr std::array kBackends = {
    BackendEntry{"dm-thin", &ProbeDmThin, &OpenDmThin},
    BackendEntry{"btrfs", &ProbeBtrfs, &OpenBtrfs},
    BackendEntry{"reflink", &ProbeReflink, &OpenReflink},
    BackendEntry{"copy", &ProbeCopy, &OpenCopy},
};

}  // namespace

std::span<const BackendEntry> RegisteredBackends() { return kBackends; }

const BackendEntry* FindBackend(std::string_view name) {
  for (const BackendEntry& entry : kBackends) {
    if (entry.name == name) return &entry;
  }
  return nullptr;
}

}  // namespace fe::storage::registry
