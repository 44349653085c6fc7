#include "bench/clone_benchmarks.h"

#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <memory>

#include <benchmark/benchmark.h>
#include <fmt/format.h>

#include "bench/datasets.h"
#include "bench/interrupt.h"
#include "bench/scratch_filesystem.h"
#include "storage/tree/tree_cloner.h"

namespace fe::bench {
namespace {

// Created on the first benchmark that needs it (listing benchmarks must not mount anything).
struct XfsFixture {
  std::unique_ptr<WorkDirectory> work;  // declared first: destroyed after the filesystem
  std::unique_ptr<ScratchFilesystem> scratch;
  std::vector<Dataset> datasets;
  std::string error;
};

std::unique_ptr<XfsFixture> g_fixture;

const XfsFixture& Fixture() {
  if (g_fixture) return *g_fixture;
  g_fixture = std::make_unique<XfsFixture>();
  auto fail = [](const Status& status) -> const XfsFixture& {
    g_fixture->error = status.ToString();
    return *g_fixture;
  };
  if (::geteuid() != 0) return fail(Status::PermissionDenied("needs root for a loop-mounted XFS"));
  Result<std::unique_ptr<WorkDirectory>> work = WorkDirectory::Create("/var/tmp");
  if (!work.ok()) return fail(work.status());
  g_fixture->work = std::move(*work);
  Result<std::unique_ptr<ScratchFilesystem>> scratch =
      ScratchFilesystem::Open(ScratchKind::kXfs, g_fixture->work->path());
  if (!scratch.ok()) return fail(scratch.status());
  g_fixture->scratch = std::move(*scratch);
  Result<std::vector<Dataset>> datasets = GenerateDatasets(g_fixture->scratch->root() + "/datasets");
  if (!datasets.ok()) return fail(datasets.status());
  g_fixture->datasets = std::move(*datasets);
  return *g_fixture;
}

// Args: {uring (0/1), durable (0/1)}. Only the clone is timed (manual time); removing the result
// and syncing happen between iterations.
void CloneBenchmark(benchmark::State& state, size_t dataset_index) {
  const XfsFixture& fixture = Fixture();
  if (!fixture.error.empty()) {
    state.SkipWithError(fixture.error.c_str());
    return;
  }
  const Dataset& dataset = fixture.datasets[dataset_index];
  storage::tree::CloneOptions options;
  options.io_engine = state.range(0) ? storage::tree::IoEngine::kUring : storage::tree::IoEngine::kSyscalls;
  options.durable = state.range(1) != 0;
  std::string target = fixture.scratch->root() + "/bm-clone";
  std::string label;
  for (auto _ : state) {
    if (Interrupted()) {
      state.SkipWithError("interrupted");
      break;
    }
    auto start = std::chrono::steady_clock::now();
    Result<storage::CloneReport> report = storage::tree::CloneTree(dataset.path, target, options);
    auto elapsed = std::chrono::steady_clock::now() - start;
    if (!report.ok()) {
      state.SkipWithError(report.status().ToString().c_str());
      break;
    }
    state.SetIterationTime(std::chrono::duration<double>(elapsed).count());
    label = fmt::format("{} via {}", report->mechanism, report->io_engine);
    std::error_code error;
    std::filesystem::remove_all(target, error);
    Status synced = SyncFilesystem(fixture.scratch->root());
    if (error || !synced.ok()) {
      state.SkipWithError(("cleanup failed: " + (error ? error.message() : synced.ToString())).c_str());
      break;
    }
  }
  state.SetLabel(label);
  state.counters["files"] = static_cast<double>(dataset.listing.files.size());
}

void BM_CloneGuestDir(benchmark::State& state) { CloneBenchmark(state, 0); }
void BM_CloneSmallFiles(benchmark::State& state) { CloneBenchmark(state, 1); }

BENCHMARK(BM_CloneGuestDir)
    ->ArgNames({"uring", "durable"})
    ->ArgsProduct({{0, 1}, {1, 0}})
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_CloneSmallFiles)
    ->ArgNames({"uring", "durable"})
    ->ArgsProduct({{0, 1}, {1, 0}})
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);

}  // namespace

void ReleaseBenchmarkFilesystem() { g_fixture.reset(); }

}  // namespace fe::bench
