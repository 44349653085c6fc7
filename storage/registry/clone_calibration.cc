#include "storage/registry/clone_calibration.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <functional>
#include <limits>
#include <memory>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "base/fs_util.h"
#include "base/unique_fd.h"
#include "storage/btrfs/btrfs_backend.h"
#include "storage/tree/reflink_probe.h"
#include "storage/tree/tree_backend.h"

namespace fe::storage::registry {
namespace {

using Clock = std::chrono::steady_clock;
constexpr size_t kFileBytes = 4096;
constexpr int kRuns = 5;
constexpr int kMaxRuns = 15;

struct TreeShape {
  size_t directories = 0;
  size_t files_per_directory = 0;
  size_t entries() const { return directories * (1 + files_per_directory); }
  uint64_t bytes() const { return directories * files_per_directory * kFileBytes; }
};
constexpr TreeShape kSmallTree{.directories = 1, .files_per_directory = 8};
constexpr TreeShape kLargeTree{.directories = 4, .files_per_directory = 16};

int64_t Micros(Clock::duration duration) {
  return std::chrono::duration_cast<std::chrono::microseconds>(duration).count();
}

Status FillTree(const std::string& dir, const TreeShape& shape) {
  const std::string block(kFileBytes, 'c');
  for (size_t d = 0; d < shape.directories; ++d) {
    const std::string sub = JoinPath(dir, fmt::format("d{}", d));
    if (::mkdir(sub.c_str(), 0755) != 0) return Status::FromErrno(errno, "create calibration directory", sub);
    for (size_t f = 0; f < shape.files_per_directory; ++f) {
      const std::string path = JoinPath(sub, fmt::format("f{}", f));
      UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644));
      if (!fd) return Status::FromErrno(errno, "create calibration file", path);
      FE_RETURN_IF_ERROR(WriteAllAt(fd.get(), block.data(), block.size(), 0, path));
    }
  }
  return Status::Ok();
}

Result<std::unique_ptr<Backend>> OpenMechanism(const std::string& mechanism, const std::string& dir,
                                               const tree::FilesystemProbe& probe) {
  if (mechanism == "btrfs-snapshot") {
    // Snapshot every subvolume, whatever its size: the snapshot's own cost is what is measured.
    FE_ASSIGN_OR_RETURN(std::unique_ptr<btrfs::BtrfsBackend> backend,
                        btrfs::BtrfsBackend::Open(dir, "calibration", /*snapshot_min_entries=*/0));
    return std::unique_ptr<Backend>(std::move(backend));
  }
  const tree::DataMode mode = mechanism == "reflink" ? tree::DataMode::kReflink : tree::DataMode::kCopy;
  return tree::OpenTreeBackend(dir, mode, "calibration", probe.reflink);
}

// Removes every volume of `backend`: what an interrupted calibration left, or this one's.
Status RemoveVolumes(Backend& backend) {
  FE_RETURN_IF_ERROR(backend.RemoveLeftovers().status());
  FE_ASSIGN_OR_RETURN(std::vector<std::string> volumes, backend.List());
  for (const std::string& volume : volumes) FE_RETURN_IF_ERROR(backend.Remove(volume));
  return Status::Ok();
}

// Clones each of `sources` once per round, interleaved so that a burst of load on the host lands on
// every tree alike, and keeps each tree's fastest clone; the clones are removed. A larger tree whose
// fastest clone is not yet the dearer is noise, not a cost: more rounds run, up to kMaxRuns.
Result<std::vector<int64_t>> TimeClones(Backend& backend, const std::vector<std::string>& sources) {
  std::vector<int64_t> fastest(sources.size(), std::numeric_limits<int64_t>::max());
  const auto ordered = [&fastest] { return std::is_sorted(fastest.begin(), fastest.end(), std::less_equal<>()); };
  for (int run = 0; run < kRuns || (run < kMaxRuns && !ordered()); ++run) {
    for (size_t i = 0; i < sources.size(); ++i) {
      const std::string clone = fmt::format("{}-clone-{}", sources[i], run);
      const Clock::time_point start = Clock::now();
      FE_RETURN_IF_ERROR(backend.Clone(sources[i], clone).status());
      fastest[i] = std::min(fastest[i], Micros(Clock::now() - start));
      FE_RETURN_IF_ERROR(backend.Remove(clone));
    }
  }
  return fastest;
}

// `shapes` in increasing size.
Status MeasureInto(Backend& backend, const std::string& mechanism, const std::vector<TreeShape>& shapes,
                   std::vector<MeasuredClone>& clones) {
  FE_RETURN_IF_ERROR(RemoveVolumes(backend));
  std::vector<std::string> sources;
  for (const TreeShape& shape : shapes) {
    sources.push_back(fmt::format("tree-{}", shape.entries()));
    FE_RETURN_IF_ERROR(backend.Create(sources.back()));
    FE_RETURN_IF_ERROR(FillTree(backend.Path(sources.back()), shape));
  }
  FE_ASSIGN_OR_RETURN(std::vector<int64_t> micros, TimeClones(backend, sources));
  for (size_t i = 0; i < shapes.size(); ++i) {
    FE_RETURN_IF_ERROR(backend.Remove(sources[i]));
    clones.push_back(MeasuredClone{
        .mechanism = mechanism, .entries = shapes[i].entries(), .bytes = shapes[i].bytes(), .clone_us = micros[i]});
  }
  return Status::Ok();
}

Status Measure(const std::string& mechanism, const std::string& dir, const tree::FilesystemProbe& probe,
               const std::vector<TreeShape>& shapes, std::vector<MeasuredClone>& clones) {
  {
    FE_ASSIGN_OR_RETURN(std::unique_ptr<Backend> backend, OpenMechanism(mechanism, dir, probe));
    Status measured = MeasureInto(*backend, mechanism, shapes, clones);
    if (!measured.ok()) {
      (void)RemoveVolumes(*backend);  // best effort; the next calibration clears the rest
      return measured.Annotate("calibrating " + mechanism + " clones in " + dir);
    }
  }
  if (::rmdir(dir.c_str()) != 0) return Status::FromErrno(errno, "remove calibration directory", dir);
  return Status::Ok();
}

}  // namespace

std::optional<size_t> FitBtrfsCrossover(const std::vector<MeasuredClone>& clones) {
  const MeasuredClone* small = nullptr;
  const MeasuredClone* large = nullptr;
  const MeasuredClone* snapshot = nullptr;
  for (const MeasuredClone& clone : clones) {
    if (clone.mechanism == "btrfs-snapshot") snapshot = &clone;
    if (clone.mechanism != "reflink") continue;
    if (small == nullptr || clone.entries < small->entries) small = &clone;
    if (large == nullptr || clone.entries > large->entries) large = &clone;
  }
  if (small == nullptr || snapshot == nullptr || large->entries == small->entries) return std::nullopt;
  const double per_entry =
      static_cast<double>(large->clone_us - small->clone_us) / static_cast<double>(large->entries - small->entries);
  if (per_entry <= 0) return std::nullopt;
  const double fixed = static_cast<double>(small->clone_us) - per_entry * static_cast<double>(small->entries);
  const double crossover = (static_cast<double>(snapshot->clone_us) - fixed) / per_entry;
  return static_cast<size_t>(std::clamp(std::ceil(crossover), 0.0, static_cast<double>(kMaxCrossoverEntries)));
}

Result<CloneCalibration> CalibrateCloneCosts(const std::string& root) {
  const Clock::time_point start = Clock::now();
  const std::string top = JoinPath(root, kCalibrationDirectory);
  FE_RETURN_IF_ERROR(MakeDirectories(root, 0711));
  FE_ASSIGN_OR_RETURN(tree::FilesystemProbe probe, tree::ProbeFilesystem(root));
  if (::mkdir(top.c_str(), 0700) != 0 && errno != EEXIST) {
    return Status::FromErrno(errno, "create calibration directory", top);
  }
  CloneCalibration calibration;
  const bool btrfs = probe.filesystem == "btrfs";
  if (btrfs) {
    FE_RETURN_IF_ERROR(
        Measure("btrfs-snapshot", JoinPath(top, "btrfs-snapshot"), probe, {kLargeTree}, calibration.clones));
  }
  if (probe.reflink) {
    FE_RETURN_IF_ERROR(
        Measure("reflink", JoinPath(top, "reflink"), probe, {kSmallTree, kLargeTree}, calibration.clones));
  }
  FE_RETURN_IF_ERROR(Measure("copy", JoinPath(top, "copy"), probe, {kSmallTree, kLargeTree}, calibration.clones));
  if (::rmdir(top.c_str()) != 0) {
    // Something else is in there (a calibration directory of a mechanism this root no longer offers).
    UniqueFd root_fd(::open(root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!root_fd) return Status::FromErrno(errno, "open", root);
    FE_RETURN_IF_ERROR(
        RemoveTree(root_fd.get(), kCalibrationDirectory).Annotate("remove calibration directory " + top));
  }
  if (btrfs) calibration.btrfs_crossover_entries = FitBtrfsCrossover(calibration.clones);
  calibration.took_us = Micros(Clock::now() - start);
  return calibration;
}

nlohmann::json ToJson(const CloneCalibration& calibration) {
  nlohmann::json clones = nlohmann::json::array();
  for (const MeasuredClone& clone : calibration.clones) {
    clones.push_back({{"mechanism", clone.mechanism},
                      {"entries", clone.entries},
                      {"bytes", clone.bytes},
                      {"clone_us", clone.clone_us}});
  }
  const std::optional<size_t>& crossover = calibration.btrfs_crossover_entries;
  return {{"clones", std::move(clones)},
          {"btrfs_crossover_entries", crossover ? nlohmann::json(*crossover) : nlohmann::json(nullptr)},
          {"took_us", calibration.took_us}};
}

}  // namespace fe::storage::registry
