// forkbench-api: what a fork through forkd costs beyond its clone (issue #20).
//
//   forkbench-api [--forks 200] [--fan-outs 1,10,64] [--fan-out-repetitions 10]
//                 [--instance-counts 10,1000,5000] [--forks-per-count 50] [--listings 50] [--forkd PATH]
//
// Starts a real forkd on a temporary data root on a loop-mounted XFS (root needed) and imports a
// sample Cloud Hypervisor standby instance (engine/forkctl/sample_instance.h). Measures, in one run
// and on that one filesystem:
//   1. the floors, before forkd does anything: the bare FICLONE loop over the sample's tree
//      (bench/floor_clone.h) and the reflink backend's Clone alone, durable as forkd's is; --forks
//      each, median and p99;
//   2. single forks of the template through the API over the socket, one keep-alive client, --forks
//      of them one by one (each deleted again outside the timing): the client's round trip and
//      forkd's total_us, median and p99, and the median's ratio to the backend's clone (target <= 1.5);
//   3. fan-outs (one request with count N) for each of --fan-outs, --fan-out-repetitions times: the
//      request's median, per fork, and beside it N x the backend's clone (target: at most that);
//   4. single forks with N instances present for each of --instance-counts (made by fan-outs of 64,
//      labelled, not timed), --forks-per-count each: median and p99, and the ratio to the first count
//      (target: within 1.1);
//   5. at each of those counts, --listings GET /v1/instances of each kind: filtered to one fan-out's
//      label, the first page of 100 of a label held by a tenth and a state, and everything unfiltered
//      (target: a filtered list at 5,000 instances under 20 ms).
// A benchmark: it prints numbers against targets and never fails on them.
#include <fmt/format.h>
#include <stdlib.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "bench/floor_clone.h"
#include "bench/forkd_bench_site.h"
#include "bench/interrupt.h"
#include "bench/latency_summary.h"
#include "bench/pool_api.h"
#include "bench/tree_facts.h"
#include "storage/registry/backend_selection.h"

namespace fe::bench {
namespace {

using Clock = std::chrono::steady_clock;
using Json = nlohmann::json;
constexpr const char* kTemplate = "template";
constexpr int kMaxFanOut = 64;

struct Options {
  std::string forkd = FE_FORKD_BINARY;
  int forks = 200;
  std::vector<int> fan_outs = {1, 10, 64};
  int fan_out_repetitions = 10;
  std::vector<int> instance_counts = {10, 1000, 5000};
  int forks_per_count = 50;
  int listings = 50;
};

struct Floors {
  double ficlone_ms = 0;  // medians
  double backend_clone_ms = 0;
};

void PrintRow(const std::string& label, const std::vector<double>& values, const std::string& note) {
  std::printf("   %-44s %6zu %9.3f %9.3f %s\n", label.c_str(), values.size(), Percentile(values, 0.5),
              Percentile(values, 0.99), note.c_str());
}

// 1. The floors on the scratch filesystem forkd will use, before forkd runs.
Result<Floors> MeasureFloors(const ForkdBenchSite& site, const Options& options) {
  const std::string root = site.data_root() + "-floors";
  FE_ASSIGN_OR_RETURN(TreeListing listing, ListTree(site.sample_dir()));
  FE_ASSIGN_OR_RETURN(std::unique_ptr<storage::Backend> backend, storage::registry::OpenBackend(root, "reflink"));
  FE_RETURN_IF_ERROR(backend->Import(site.sample_dir(), "sample").status());
  std::vector<double> floor_ms, clone_ms;
  for (int i = 0; i < options.forks; ++i) {
    FE_RETURN_IF_ERROR(CheckInterrupted());
    const std::string target = fmt::format("{}/floor-{}", root, i);
    FE_ASSIGN_OR_RETURN(std::chrono::nanoseconds floor, FloorClone(site.sample_dir(), listing, target));
    floor_ms.push_back(std::chrono::duration<double, std::milli>(floor).count());
    std::filesystem::remove_all(target);
    const std::string volume = fmt::format("clone-{}", i);
    const Clock::time_point start = Clock::now();
    FE_RETURN_IF_ERROR(backend->Clone("sample", volume).status());
    clone_ms.push_back(MillisSince(start));
    FE_RETURN_IF_ERROR(backend->Remove(volume));
  }
  std::printf("\n1. floors: the sample's tree (%zu files, %zu directories) cloned on the same XFS, %d times\n",
              listing.files.size(), listing.directories.size(), options.forks);
  std::printf("   %-44s %6s %9s %9s\n", "", "n", "p50 ms", "p99 ms");
  PrintRow("bare FICLONE loop (no metadata, no sync)", floor_ms, "");
  PrintRow("reflink backend Clone alone (durable)", clone_ms, "");
  FE_RETURN_IF_ERROR(backend->Remove("sample"));
  backend.reset();
  std::filesystem::remove_all(root);
  return Floors{Percentile(floor_ms, 0.5), Percentile(clone_ms, 0.5)};
}

// forkd's phases of a fork (its reply's "phases", in ms), by phase name; "total" is total_us.
using PhaseSamples = std::map<std::string, std::vector<double>>;
constexpr const char* kPhases[] = {"total", "lock_wait", "clone", "rewrite", "metadata"};

// One fork request of `count` forks named `name` (count 1) or `name-1..`; returns the round trip in ms
// and appends each fork's phases to `phases`.
Result<double> ForkOnce(PoolApi& api, const std::string& name, int count, PhaseSamples* phases,
                        const Json& labels = Json::object()) {
  const Clock::time_point sent = Clock::now();
  FE_ASSIGN_OR_RETURN(Json reply, api.Post(fmt::format("/v1/instances/{}/fork", kTemplate),
                                           Json{{"name", name}, {"count", count}, {"labels", labels}}, 201));
  const double round_trip = MillisSince(sent);
  if (phases != nullptr) {
    for (const Json& fork : reply["forks"]) {
      for (const char* phase : kPhases) {
        (*phases)[phase].push_back(fork["phases"].value(std::string(phase) + "_us", 0.0) / 1000);
      }
    }
  }
  return round_trip;
}

Status DeleteForks(PoolApi& api, const std::string& name, int count) {
  if (count == 1) return api.Delete("/v1/instances/" + name).status();
  for (int i = 1; i <= count; ++i) FE_RETURN_IF_ERROR(api.Delete(fmt::format("/v1/instances/{}-{}", name, i)).status());
  return Status::Ok();
}

// Single forks one by one, each deleted outside the timing: round trips and forkd's totals.
Status SingleForks(PoolApi& api, int forks, const std::string& prefix, std::vector<double>& round_trips,
                   PhaseSamples& phases) {
  for (int i = 0; i < forks; ++i) {
    FE_RETURN_IF_ERROR(CheckInterrupted());
    const std::string name = fmt::format("{}-{}", prefix, i);
    FE_ASSIGN_OR_RETURN(double round_trip, ForkOnce(api, name, 1, &phases));
    round_trips.push_back(round_trip);
    FE_RETURN_IF_ERROR(DeleteForks(api, name, 1));
  }
  return Status::Ok();
}

// 2. Single forks through the API.
Status MeasureSingleForks(PoolApi& api, const Floors& floors, const Options& options) {
  std::vector<double> round_trips;
  PhaseSamples phases;
  FE_RETURN_IF_ERROR(SingleForks(api, options.forks, "single", round_trips, phases));
  std::printf("\n2. single forks through forkd's socket, one by one\n");
  std::printf("   %-44s %6s %9s %9s\n", "", "n", "p50 ms", "p99 ms");
  PrintRow("client round trip", round_trips,
           fmt::format("{:.2f}x the backend's clone (target <= 1.5x)",
                       Percentile(round_trips, 0.5) / floors.backend_clone_ms));
  PrintRow("forkd's total_us", phases["total"],
           fmt::format("{:.2f}x the backend's clone, {:.2f}x the FICLONE floor",
                       Percentile(phases["total"], 0.5) / floors.backend_clone_ms,
                       Percentile(phases["total"], 0.5) / floors.ficlone_ms));
  for (const char* phase : kPhases) {
    if (std::string(phase) != "total") PrintRow(fmt::format("  phase {}_us", phase), phases[phase], "");
  }
  return Status::Ok();
}

// 3. Fan-outs: one request, count N.
Status MeasureFanOuts(PoolApi& api, const Floors& floors, const Options& options) {
  std::printf("\n3. fan-outs: one request with count N, %d times each\n", options.fan_out_repetitions);
  // A fan-out prepares its forks on up to 8 threads (two cores here) and commits them as one group, so
  // a fork's phases overlap the others': its metadata includes the group's commit, shared by all.
  std::printf("   %7s %10s %10s %12s %22s   %s\n", "count", "p50 ms", "p99 ms", "ms per fork", "N x backend clone ms",
              "per fork p50 clone / rewrite / metadata ms");
  for (int count : options.fan_outs) {
    std::vector<double> round_trips;
    PhaseSamples phases;
    for (int r = 0; r < options.fan_out_repetitions; ++r) {
      FE_RETURN_IF_ERROR(CheckInterrupted());
      const std::string name = fmt::format("fan{}-{}", count, r);
      FE_ASSIGN_OR_RETURN(double round_trip, ForkOnce(api, name, count, &phases));
      round_trips.push_back(round_trip);
      FE_RETURN_IF_ERROR(DeleteForks(api, name, count));
    }
    const double median = Percentile(round_trips, 0.5);
    std::printf("   %7d %10.2f %10.2f %12.3f %22.2f   %.3f / %.3f / %.3f\n", count, median,
                Percentile(round_trips, 0.99), median / count, count * floors.backend_clone_ms,
                Percentile(phases["clone"], 0.5), Percentile(phases["rewrite"], 0.5),
                Percentile(phases["metadata"], 0.5));
  }
  return Status::Ok();
}

// 5. Listings with N instances present: round trips of `listings` requests each, median and p99.
struct ListingRow {
  int instances = 0;
  std::vector<double> one_batch_ms, first_page_ms, everything_ms;
  size_t one_batch = 0, first_page = 0, everything = 0;  // instances in each reply
};

Result<ListingRow> MeasureListings(PoolApi& api, int present, const std::string& batch, int listings) {
  ListingRow row;
  row.instances = present;
  auto time = [&](const std::string& path, std::vector<double>& samples, size_t& listed) -> Status {
    for (int i = 0; i < listings; ++i) {
      FE_RETURN_IF_ERROR(CheckInterrupted());
      const Clock::time_point sent = Clock::now();
      FE_ASSIGN_OR_RETURN(Json reply, api.Get(path));
      samples.push_back(MillisSince(sent));
      listed = reply["instances"].size();
    }
    return Status::Ok();
  };
  FE_RETURN_IF_ERROR(time("/v1/instances?label=batch=" + batch, row.one_batch_ms, row.one_batch));
  FE_RETURN_IF_ERROR(time("/v1/instances?label=tier=gold&state=Standby&limit=100", row.first_page_ms, row.first_page));
  FE_RETURN_IF_ERROR(time("/v1/instances", row.everything_ms, row.everything));
  return row;
}

void PrintListings(const std::vector<ListingRow>& rows, int listings) {
  std::printf("\n5. listing with N instances present, %d requests each: p50 / p99 ms (instances in the reply)\n",
              listings);
  std::printf("   %9s %28s %28s %28s\n", "instances", "label=batch=<one fan-out>", "tier=gold,Standby limit=100",
              "everything, unfiltered");
  for (const ListingRow& row : rows) {
    auto cell = [](const std::vector<double>& ms, size_t listed) {
      return fmt::format("{:.3f} / {:.3f} ({})", Percentile(ms, 0.5), Percentile(ms, 0.99), listed);
    };
    std::printf("   %9d %28s %28s %28s\n", row.instances, cell(row.one_batch_ms, row.one_batch).c_str(),
                cell(row.first_page_ms, row.first_page).c_str(), cell(row.everything_ms, row.everything).c_str());
  }
  std::printf("   target: a filtered list at 5,000 instances under 20 ms\n");
}

// 4. Single-fork latency with many instances present (and 5., listings at each count).
Status MeasureInstanceCounts(PoolApi& api, const Options& options) {
  std::printf("\n4. single forks with N instances present (forks of the template), %d each\n", options.forks_per_count);
  std::printf("   %9s %10s %10s %10s %18s   %s\n", "instances", "p50 ms", "p99 ms", "forkd p50", "p50 / first count",
              "forkd p50 clone / rewrite / metadata ms");
  int present = 1;  // the template
  int batch = 0;
  double first_median = 0;
  std::vector<ListingRow> listings;
  for (int wanted : options.instance_counts) {
    while (present < wanted) {
      FE_RETURN_IF_ERROR(CheckInterrupted());
      const int count = std::min(kMaxFanOut, wanted - present);
      // Every tenth fan-out is "gold": a filter matching a tenth of the instances.
      const Json labels = {{"batch", fmt::format("fill{}", batch)}, {"tier", batch % 10 == 0 ? "gold" : "free"}};
      FE_RETURN_IF_ERROR(ForkOnce(api, fmt::format("fill{}", batch), count, nullptr, labels).status());
      ++batch;
      present += count;
    }
    std::vector<double> round_trips;
    PhaseSamples phases;
    FE_RETURN_IF_ERROR(SingleForks(api, options.forks_per_count, fmt::format("at{}", wanted), round_trips, phases));
    const double median = Percentile(round_trips, 0.5);
    if (first_median == 0) first_median = median;
    std::printf("   %9d %10.3f %10.3f %10.3f %17.2fx   %.3f / %.3f / %.3f\n", present, median,
                Percentile(round_trips, 0.99), Percentile(phases["total"], 0.5), median / first_median,
                Percentile(phases["clone"], 0.5), Percentile(phases["rewrite"], 0.5),
                Percentile(phases["metadata"], 0.5));
    FE_ASSIGN_OR_RETURN(ListingRow row,
                        MeasureListings(api, present, fmt::format("fill{}", batch / 2), options.listings));
    listings.push_back(std::move(row));
  }
  PrintListings(listings, options.listings);
  return Status::Ok();
}

Status Run(const Options& options) {
  FE_ASSIGN_OR_RETURN(std::unique_ptr<ForkdBenchSite> site, ForkdBenchSite::Create("forkbench-api"));
  std::printf("scratch filesystem %s\n", site->description().c_str());
  Status status = [&]() -> Status {
    FE_ASSIGN_OR_RETURN(Floors floors, MeasureFloors(*site, options));
    std::printf("\n");
    return site->WithForkd(options.forkd, kTemplate, [&](PoolApi& api) -> Status {
      FE_RETURN_IF_ERROR(MeasureSingleForks(api, floors, options));
      FE_RETURN_IF_ERROR(MeasureFanOuts(api, floors, options));
      return MeasureInstanceCounts(api, options);
    });
  }();
  if (Status closed = site->Close(); status.ok()) status = closed;
  return status;
}

}  // namespace
}  // namespace fe::bench

int main(int argc, char** argv) {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  fe::bench::Options options;
  CLI::App app{"forkbench-api: a fork through forkd beside its clone, fan-outs, and many instances (needs root)"};
  app.add_option("--forkd", options.forkd, "forkd binary")->capture_default_str();
  app.add_option("--forks", options.forks, "single forks (and floor clones) measured")
      ->check(CLI::Range(1, 100000))
      ->capture_default_str();
  app.add_option("--fan-outs", options.fan_outs, "fan-out counts")
      ->delimiter(',')
      ->check(CLI::Range(1, fe::bench::kMaxFanOut))
      ->capture_default_str();
  app.add_option("--fan-out-repetitions", options.fan_out_repetitions, "requests per fan-out count")
      ->check(CLI::Range(1, 1000))
      ->capture_default_str();
  app.add_option("--instance-counts", options.instance_counts, "instances present, ascending")
      ->delimiter(',')
      ->check(CLI::Range(1, 100000))
      ->capture_default_str();
  app.add_option("--forks-per-count", options.forks_per_count, "single forks measured at each instance count")
      ->check(CLI::Range(1, 10000))
      ->capture_default_str();
  app.add_option("--listings", options.listings, "listing requests measured per kind at each instance count")
      ->check(CLI::Range(1, 10000))
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  if (!std::is_sorted(options.instance_counts.begin(), options.instance_counts.end())) {
    std::fprintf(stderr, "forkbench-api: --instance-counts must be ascending\n");
    return 2;
  }
  fe::Status status = fe::bench::Run(options);
  if (!status.ok()) {
    std::fprintf(stderr, "forkbench-api: %s\n", status.ToString().c_str());
    return 1;
  }
  return 0;
}
