#include "bench/dm_thin_column.h"

#include <fcntl.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <memory>
#include <optional>

#include <fmt/format.h>

#include "base/fs_util.h"
#include "base/unique_fd.h"
#include "bench/compare_report.h"
#include "bench/datasets.h"
#include "bench/interrupt.h"
#include "storage/dm_thin/dm_thin_backend.h"
#include "storage/dm_thin/dm_thin_device.h"
#include "storage/tree/tree_backend.h"

namespace fe::bench {
namespace {

using Clock = std::chrono::steady_clock;
constexpr uint64_t kMiB = 1ull << 20;

struct Cell {
  std::vector<double> ms;
  std::string mechanism;
  std::optional<uint64_t> pool_bytes;  // dm-thin: what one clone took from the pool, before its removal
};

// Clones `source` into a fresh volume `runs` times (after `warmups` untimed ones), removing each.
Result<Cell> TimeClones(storage::Backend& backend, const std::string& source, int warmups, int runs) {
  Cell cell;
  const std::string clone = source + "-clone";
  for (int run = 0; run < warmups + runs; ++run) {
    FE_RETURN_IF_ERROR(CheckInterrupted());
    Result<std::optional<storage::PoolUsage>> before = backend.Pool();
    FE_RETURN_IF_ERROR(before.status());
    const Clock::time_point start = Clock::now();
    FE_ASSIGN_OR_RETURN(storage::CloneReport report, backend.Clone(source, clone));
    const double ms = std::chrono::duration<double, std::milli>(Clock::now() - start).count();
    if (run >= warmups) cell.ms.push_back(ms);
    cell.mechanism = report.mechanism;
    Result<std::optional<storage::PoolUsage>> after = backend.Pool();
    FE_RETURN_IF_ERROR(after.status());
    if (*before && *after) cell.pool_bytes = (*after)->data_used_bytes - (*before)->data_used_bytes;
    FE_RETURN_IF_ERROR(backend.Remove(clone));
  }
  return cell;
}

std::string Ms(const Cell& cell) {
  std::optional<double> median = Median(cell.ms);
  return median ? fmt::format("{:.2f}", *median) : "-";
}

std::string Ratio(const Cell& slow, const Cell& fast) {
  std::optional<double> a = Median(slow.ms), b = Median(fast.ms);
  if (!a || !b || *b <= 0) return "-";
  const double ratio = *a / *b;
  return ratio >= 10 ? fmt::format("{:.0f}x", ratio) : fmt::format("{:.2f}x", ratio);
}

struct Backends {
  std::unique_ptr<storage::dm_thin::DmThinBackend> thin;
  std::unique_ptr<storage::Backend> copy;
  std::unique_ptr<storage::Backend> reflink;  // null without a reflink scratch
};

Result<Backends> OpenBackends(const DmThinColumnOptions& options) {
  Backends backends;
  FE_RETURN_IF_ERROR(MakeDirectories(options.scratch, 0700));
  storage::dm_thin::DmThinConfig thin;
  thin.data_root = JoinPath(options.scratch, "thin");
  thin.pool_name = fmt::format("forkbench-{}", ::getpid());
  const uint64_t largest = *std::max_element(options.data_mib.begin(), options.data_mib.end());
  // The source, one clone's writes and the filesystem, with room to spare below the threshold.
  thin.data_size_bytes = std::max<uint64_t>(4ull << 30, 3 * (largest + options.memory_mib) * kMiB);
  FE_ASSIGN_OR_RETURN(backends.thin, storage::dm_thin::OpenDmThinBackend(thin));
  FE_ASSIGN_OR_RETURN(backends.copy,
                      storage::tree::OpenTreeBackend(JoinPath(options.scratch, "copy"), storage::tree::DataMode::kCopy,
                                                     "forkbench", false));
  if (!options.reflink_scratch.empty()) {
    FE_ASSIGN_OR_RETURN(backends.reflink,
                        storage::tree::OpenTreeBackend(JoinPath(options.reflink_scratch, "reflink"),
                                                       storage::tree::DataMode::kReflink, "forkbench", true));
  }
  return backends;
}

// One row: the sample guest with `data_mib` of disk data, in every backend, cloned by each.
Status MeasureRow(Backends& backends, const DmThinColumnOptions& options, uint64_t data_mib) {
  const std::string source = fmt::format("guest-{}m", data_mib);
  const GuestShape shape{
      .disk_bytes = 10ull << 30, .disk_data_bytes = data_mib * kMiB, .memory_bytes = options.memory_mib * kMiB};
  FE_RETURN_IF_ERROR(backends.copy->Create(source));
  FE_RETURN_IF_ERROR(FillGuestDir(backends.copy->Path(source), shape));
  FE_RETURN_IF_ERROR(SyncFilesystem(backends.copy->Path(source)));
  FE_RETURN_IF_ERROR(backends.thin->Import(backends.copy->Path(source), source).status());
  if (backends.reflink) FE_RETURN_IF_ERROR(backends.reflink->Import(backends.copy->Path(source), source).status());

  FE_ASSIGN_OR_RETURN(Cell thin, TimeClones(*backends.thin, source, 1, options.repetitions));
  std::optional<Cell> reflink;
  if (backends.reflink) {
    FE_ASSIGN_OR_RETURN(reflink, TimeClones(*backends.reflink, source, 1, options.repetitions));
  }
  FE_ASSIGN_OR_RETURN(Cell copy, TimeClones(*backends.copy, source, 0, options.copy_repetitions));
  fmt::print("| {} MiB | **{}** | {} KiB | {} | {} | {} | {} |\n", data_mib, Ms(thin),
             thin.pool_bytes ? std::to_string(*thin.pool_bytes / 1024) : "-", Ms(copy), Ratio(copy, thin),
             reflink ? Ms(*reflink) : "-", reflink ? Ratio(*reflink, thin) : "-");
  std::fflush(stdout);

  FE_RETURN_IF_ERROR(backends.thin->Remove(source));
  if (backends.reflink) FE_RETURN_IF_ERROR(backends.reflink->Remove(source));
  return backends.copy->Remove(source);
}

}  // namespace

int RunDmThinColumn(const DmThinColumnOptions& options) {
  InstallInterruptHandlers();
  std::string why;
  if (!storage::dm_thin::DeviceMapperAvailable(&why)) {
    fmt::print(stderr,
               "forkbench --backends --filesystems dm-thin: {}; run it in the QEMU guest instead "
               "(tests/guest/dm_thin_guest_run, see the README)\n",
               why);
    return 1;
  }
  if (options.data_mib.empty()) {
    fmt::print(stderr, "forkbench: --dm-thin-data-mib is empty\n");
    return 2;
  }
  struct utsname host;
  ::uname(&host);
  fmt::print(
      "forkbench --backends --filesystems dm-thin: kernel {}, {} CPUs; median ms of {} clones (dm-thin, reflink) "
      "and {} copies; each the backend's durable Clone\n"
      "sample guest: 10 GiB sparse disk.raw with the row's data in scattered 4 MiB chunks, {} MiB memory.bin, "
      "configs\n\n"
      "| disk data | dm-thin | pool per clone | copy | copy / dm-thin | reflink | reflink / dm-thin |\n"
      "|---|---|---|---|---|---|---|\n",
      host.release, ::sysconf(_SC_NPROCESSORS_ONLN), options.repetitions, options.copy_repetitions, options.memory_mib);
  std::fflush(stdout);
  Result<Backends> backends = OpenBackends(options);
  Status measured = backends.status();
  for (size_t i = 0; measured.ok() && i < options.data_mib.size(); ++i) {
    measured = MeasureRow(*backends, options, options.data_mib[i]);
  }
  Status deactivated = backends.ok() ? backends->thin->Deactivate() : Status::Ok();
  if (deactivated.ok()) {
    // Nothing is mounted any more: the pool's images and the copies go.
    UniqueFd scratch(::open(options.scratch.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    for (const char* dir : {"thin", "copy"}) {
      if (scratch) (void)RemoveTree(scratch.get(), dir);
    }
  }
  if (!measured.ok() || !deactivated.ok()) {
    fmt::print(stderr, "forkbench: {}\n", (!measured.ok() ? measured : deactivated).ToString());
    return Interrupted() ? 130 : 1;
  }
  return 0;
}

}  // namespace fe::bench
