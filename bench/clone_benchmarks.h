// Google Benchmark micro-benchmarks of CloneTree on a loop-mounted XFS (BM_CloneGuestDir,
// BM_CloneSmallFiles), run by `forkbench --benchmark_filter=...`.
#pragma once

namespace fe::bench {

// Unmounts the XFS scratch filesystem the benchmarks created on first use, if any. main() calls it
// after the benchmarks ran, so the mount never outlives the process.
void ReleaseBenchmarkFilesystem();

}  // namespace fe::bench
