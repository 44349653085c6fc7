// forkbench: how fast forkengine clones an instance's directory, and compared with what.
//
//   forkbench [--benchmark_filter=BM_CloneSmallFiles ...]   Google Benchmark micro-benchmarks (XFS)
//   forkbench --compare [--filesystems xfs,btrfs,ext4] [--repetitions N] [--json FILE]
//       our clone vs `cp -a --reflink=always`, `cp -a --sparse=always` and a bare FICLONE loop, on
//       the same inputs, one table per filesystem and dataset (ext4-loop: a loop-mounted ext4,
//       isolated from other activity on the root filesystem)
//   forkbench --backends [--filesystems btrfs,xfs,ext4-loop] [--repetitions N]
//             [--tree-sizes 10,30,60,100,1000,10000] [--json FILE]
//       every storage backend (btrfs snapshot, reflink, copy, auto) and `btrfs subvolume snapshot`
//       / `cp -a` side by side on the same inputs, plus the btrfs snapshot/reflink crossover sweep;
//       dm-thin (where device-mapper runs) clones of a sample guest beside its copy, and reflink
//       given --dm-thin-reflink-scratch (see dm_thin_column.h)
//   forkbench --e2e --guest-dir DIR [--memory-mib 256,1024] [--repetitions N] [--dirty-rates 0,64,200]
//             [--no-phases]
//       forks of a real running QEMU guest per phase, and the source's pause vs its RAM size with the
//       full-RAM standby as anchor (see e2e_fork.h; tests/e2e's fe-e2e-guest writes DIR)
//   forkbench --density --guest-dir DIR [--memory-mib 256] [--counts 1,8,32]
//       N forks of one QEMU template with RAM of their own vs mapping the template's: summed PSS and
//       private memory after each read all its RAM, restore latency, standby cost (see density.h)
//   forkbench --snapshots --guest-dir DIR [--memory-mib 256] [--repetitions N]
//       snapshots of a running QEMU guest (the source's pause and the total), forks of a snapshot
//       beside forks of a Standby instance (see snapshot_bench.h)
//
// Both modes need root for the loop-mounted scratch filesystems; without it --compare measures only
// the current directory's filesystem.
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <string>

#include <benchmark/benchmark.h>
#include <CLI/CLI.hpp>

#include "bench/backends.h"
#include "bench/clone_benchmarks.h"
#include "bench/compare.h"
#include "bench/dm_thin_column.h"
#include "bench/density.h"
#include "bench/e2e_fork.h"
#include "bench/snapshot_bench.h"
#include "bench/interrupt.h"

namespace {

bool HasArgument(int argc, char** argv, const char* wanted) {
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], wanted) == 0) return true;
  }
  return false;
}

int RunCompareMode(int argc, char** argv) {
  fe::bench::CompareOptions options;
  CLI::App app{"forkbench --compare: our tree clone vs cp -a and the bare FICLONE floor"};
  bool compare = false;
  app.add_flag("--compare", compare, "Run the comparison (required for these options)")->required();
  app.add_option("--filesystems", options.filesystems,
                 "Scratch filesystems, in order: xfs and btrfs are loop-mounted, ext4 is a directory "
                 "on the root filesystem, ext4-loop a loop-mounted ext4")
      ->delimiter(',')
      ->check(CLI::IsMember({"xfs", "btrfs", "ext4", "ext4-loop"}))
      ->capture_default_str();
  app.add_option("--repetitions", options.repetitions, "Timed runs per method")
      ->check(CLI::Range(1, 1000))
      ->capture_default_str();
  app.add_option("--json", options.json_path, "Also write the results as JSON to this file");
  CLI11_PARSE(app, argc, argv);
  return fe::bench::RunCompare(options);
}

int RunBackendsMode(int argc, char** argv) {
  fe::bench::BackendsOptions options;
  fe::bench::DmThinColumnOptions thin;
  CLI::App app{"forkbench --backends: every storage backend side by side on the same inputs"};
  bool backends = false;
  app.add_flag("--backends", backends, "Run the backend comparison (required for these options)")->required();
  app.add_option("--filesystems", options.filesystems,
                 "Scratch filesystems, in order: xfs, btrfs and ext4-loop are loop-mounted, ext4 is "
                 "a directory on the root filesystem")
      ->delimiter(',')
      ->check(CLI::IsMember({"xfs", "btrfs", "ext4", "ext4-loop", "dm-thin"}))
      ->capture_default_str();
  app.add_option("--dm-thin-scratch", thin.scratch,
                 "dm-thin: directory for the loop-backed pool and the copy column (its filesystem's copy)")
      ->capture_default_str();
  app.add_option("--dm-thin-reflink-scratch", thin.reflink_scratch,
                 "dm-thin: a directory on XFS or btrfs, for a reflink column beside it");
  app.add_option("--dm-thin-data-mib", thin.data_mib, "dm-thin: disk data of the sample guest, one row each")
      ->delimiter(',')
      ->check(CLI::Range(4, 65536))
      ->capture_default_str();
  app.add_option("--repetitions", options.repetitions, "Timed runs per method (x3 for runs under 100 ms)")
      ->check(CLI::Range(1, 1000))
      ->capture_default_str();
  app.add_option("--tree-sizes", options.tree_sizes,
                 "Files per tree of the btrfs crossover sweep (10000 is the small-files input)")
      ->delimiter(',')
      ->check(CLI::Range(1, 100000))
      ->capture_default_str();
  app.add_option("--json", options.json_path, "Also write the results as JSON to this file");
  CLI11_PARSE(app, argc, argv);
  // dm-thin is a column of its own (bench/dm_thin_column.h): where device-mapper runs, often a guest.
  auto dm_thin = std::find(options.filesystems.begin(), options.filesystems.end(), "dm-thin");
  if (dm_thin == options.filesystems.end()) return fe::bench::RunBackends(options);
  options.filesystems.erase(dm_thin);
  thin.repetitions = options.repetitions;
  int status = options.filesystems.empty() ? 0 : fe::bench::RunBackends(options);
  return status != 0 ? status : fe::bench::RunDmThinColumn(thin);
}

int RunE2eMode(int argc, char** argv) {
  fe::bench::E2eOptions options;
  CLI::App app{"forkbench --e2e: forks of a running QEMU guest, per phase, and the source's pause vs RAM size"};
  bool e2e = false;
  app.add_flag("--e2e", e2e, "Run the end-to-end fork measurements (required for these options)")->required();
  app.add_option("--guest-dir", options.guest_dir, "QEMU guest directory (tests/e2e's fe-e2e-guest writes one)")
      ->required();
  app.add_option("--memory-mib", options.memory_mib, "Guest RAM sizes to measure")
      ->delimiter(',')
      ->check(CLI::Range(64, 16384))
      ->capture_default_str();
  app.add_option("--repetitions", options.repetitions, "Forks per source (per pre-flush setting in the pause table)")
      ->check(CLI::Range(1, 100))
      ->capture_default_str();
  app.add_option("--dirty-rates", options.dirty_rates_mibs, "Guest dirty rates (MiB/s) for the pause table")
      ->delimiter(',')
      ->check(CLI::Range(0, 4096))
      ->capture_default_str();
  bool no_phases = false;
  app.add_flag("--no-phases", no_phases, "Leave out the per-phase table (live path against the full path)");
  CLI11_PARSE(app, argc, argv);
  options.phases = !no_phases;
  return fe::bench::RunE2e(options);
}

int RunSnapshotsMode(int argc, char** argv) {
  fe::bench::SnapshotBenchOptions options;
  CLI::App app{"forkbench --snapshots: snapshots of a running QEMU guest, and forks of a snapshot vs of an instance"};
  bool snapshots = false;
  app.add_flag("--snapshots", snapshots, "Run the snapshot measurements (required for these options)")->required();
  app.add_option("--guest-dir", options.guest_dir, "QEMU guest directory (tests/e2e's fe-e2e-guest writes one)")
      ->required();
  app.add_option("--memory-mib", options.memory_mib, "The guest's RAM")
      ->check(CLI::Range(64, 16384))
      ->capture_default_str();
  app.add_option("--repetitions", options.repetitions, "Snapshots taken, and forks of each kind")
      ->check(CLI::Range(1, 100))
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  return fe::bench::RunSnapshotBench(options);
}

int RunDensityMode(int argc, char** argv) {
  fe::bench::DensityOptions options;
  CLI::App app{"forkbench --density: summed memory of N forks of one QEMU template, private vs shared RAM"};
  bool density = false;
  app.add_flag("--density", density, "Run the density measurements (required for these options)")->required();
  app.add_option("--guest-dir", options.guest_dir, "QEMU guest directory (tests/e2e's fe-e2e-guest writes one)")
      ->required();
  app.add_option("--memory-mib", options.memory_mib, "The template's guest RAM")
      ->check(CLI::Range(64, 4096))
      ->capture_default_str();
  app.add_option("--counts", options.counts, "Fork counts to measure, each in one request")
      ->delimiter(',')
      ->check(CLI::Range(1, 64))
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  return fe::bench::RunDensity(options);
}

}  // namespace

int main(int argc, char** argv) {
  if (HasArgument(argc, argv, "--compare")) return RunCompareMode(argc, argv);
  if (HasArgument(argc, argv, "--backends")) return RunBackendsMode(argc, argv);
  if (HasArgument(argc, argv, "--e2e")) return RunE2eMode(argc, argv);
  if (HasArgument(argc, argv, "--density")) return RunDensityMode(argc, argv);
  if (HasArgument(argc, argv, "--snapshots")) return RunSnapshotsMode(argc, argv);
  if (HasArgument(argc, argv, "--help") || HasArgument(argc, argv, "-h")) {
    std::printf(
        "forkbench --compare [--filesystems xfs,btrfs,ext4] [--repetitions N] [--json FILE]\n"
        "    our clone vs cp -a and the bare FICLONE floor (see forkbench --compare --help)\n"
        "forkbench --backends [--filesystems btrfs,xfs,ext4-loop] [--repetitions N] [--json FILE]\n"
        "    every storage backend side by side (see forkbench --backends --help)\n"
        "forkbench --e2e --guest-dir DIR [--memory-mib 256,1024] [--repetitions N]\n"
        "    forks of a running QEMU guest per phase, pause vs RAM size (see forkbench --e2e --help)\n"
        "forkbench --density --guest-dir DIR [--memory-mib 256] [--counts 1,8,32]\n"
        "    summed PSS of N forks of one template, private vs shared RAM (see forkbench --density --help)\n"
        "forkbench --snapshots --guest-dir DIR [--memory-mib 256] [--repetitions N]\n"
        "    snapshots of a running QEMU guest: the pause and the total; forks of a snapshot vs of an instance\n"
        "forkbench [Google Benchmark flags]: BM_CloneGuestDir, BM_CloneSmallFiles on XFS "
        "(root)\n\n");
  }
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  fe::bench::InstallInterruptHandlers();
  benchmark::RunSpecifiedBenchmarks();
  fe::bench::ReleaseBenchmarkFilesystem();
  benchmark::Shutdown();
  return fe::bench::Interrupted() ? 130 : 0;
}
