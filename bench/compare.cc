#include "bench/compare.h"

#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "base/process.h"
#include "bench/compare_report.h"
#include "bench/datasets.h"
#include "bench/external_command.h"
#include "bench/floor_clone.h"
#include "bench/interrupt.h"
#include "bench/scratch_filesystem.h"
#include "base/fs_util.h"
#include "storage/tree/tree_cloner.h"

namespace fe::bench {
namespace {

using Clock = std::chrono::steady_clock;

struct RunOutcome {
  std::chrono::nanoseconds elapsed{0};
  std::string what;  // what the run reports about itself (our clone: mechanism and io engine)
};

struct Method {
  MethodResult result;
  std::string slug;            // destination directory prefix
  bool keeps_metadata = true;  // the floor does no chmod, so only data is compared for it
  std::function<Result<RunOutcome>(const std::string& target)> run;
};

double Milliseconds(std::chrono::nanoseconds elapsed) { return elapsed.count() / 1e6; }

Method OurClone(const Dataset& dataset, storage::tree::IoEngine engine, bool durable) {
  storage::tree::CloneOptions options;
  options.io_engine = engine;
  options.durable = durable;
  const char* engine_name = engine == storage::tree::IoEngine::kUring ? "io_uring" : "syscalls";
  Method method;
  method.result.kind = MethodKind::kOurs;
  method.result.name = fmt::format("ours {} {}", engine_name, durable ? "durable" : "no-fsync");
  method.result.command = fmt::format("fe::storage::CloneTree(io_engine={}, durable={})", engine_name, durable);
  method.slug = fmt::format("ours-{}-{}", engine_name, durable ? "durable" : "nofsync");
  method.keeps_metadata = true;
  method.run = [source = dataset.path, options](const std::string& target) -> Result<RunOutcome> {
    auto start = Clock::now();
    Result<storage::CloneReport> report = storage::tree::CloneTree(source, target, options);
    auto elapsed = Clock::now() - start;
    FE_RETURN_IF_ERROR(report.status());
    return RunOutcome{elapsed, fmt::format("{} via {}", report->mechanism, report->io_engine)};
  };
  return method;
}

Method Cp(const Dataset& dataset, MethodKind kind, const std::string& flag) {
  Method method;
  method.result.kind = kind;
  method.result.name = "cp -a " + flag;
  method.result.command = CommandLine({"cp", "-a", flag, "SRC", "DST"});
  method.slug = kind == MethodKind::kCpReflink ? "cp-reflink" : "cp-sparse";
  method.keeps_metadata = true;
  method.run = [source = dataset.path, flag](const std::string& target) -> Result<RunOutcome> {
    Result<std::chrono::nanoseconds> elapsed = TimeCommand({"cp", "-a", flag, source, target});
    FE_RETURN_IF_ERROR(elapsed.status());
    return RunOutcome{*elapsed, ""};
  };
  return method;
}

Method Floor(const Dataset& dataset) {
  Method method;
  method.result.kind = MethodKind::kFloor;
  method.result.name = "floor (bare FICLONE loop)";
  method.result.command = "sequential mkdir + open + open(O_CREAT) + FICLONE + close, no metadata";
  method.slug = "floor";
  method.keeps_metadata = false;
  method.run = [&dataset](const std::string& target) -> Result<RunOutcome> {
    Result<std::chrono::nanoseconds> elapsed = FloorClone(dataset.path, dataset.listing, target);
    FE_RETURN_IF_ERROR(elapsed.status());
    return RunOutcome{*elapsed, ""};
  };
  return method;
}

std::vector<Method> MethodsFor(const Dataset& dataset, const ScratchFilesystem& scratch) {
  std::vector<Method> methods;
  for (bool durable : {true, false}) {
    for (storage::tree::IoEngine engine : {storage::tree::IoEngine::kSyscalls, storage::tree::IoEngine::kUring}) {
      methods.push_back(OurClone(dataset, engine, durable));
    }
  }
  methods.push_back(Cp(dataset, MethodKind::kCpReflink, "--reflink=always"));
  methods.push_back(Cp(dataset, MethodKind::kCpSparse, "--sparse=always"));
  methods.push_back(Floor(dataset));
  for (Method& method : methods) {
    if (scratch.probe().reflink) break;
    // The probe's reason is in the filesystem's header line; the row only says what follows.
    if (method.result.kind == MethodKind::kCpReflink) {
      method.result.skipped = "no reflink on " + scratch.label() + ", --reflink=always cannot work";
    } else if (method.result.kind == MethodKind::kFloor) {
      method.result.skipped = "no reflink on " + scratch.label() + ", so no FICLONE floor";
    }
  }
  return methods;
}

// Destinations of small datasets are kept until all runs of the dataset are done: on ext4 without
// a journal, creating inodes within 60 s of deleting many is slow (ext4 skips "recently deleted"
// inodes one by one), so removing 10,000 files before every run would mostly time that.
constexpr uint64_t kKeepDestinationsBudget = 4ULL << 30;

Status RemoveTree(const std::string& target) {
  std::error_code error;
  std::filesystem::remove_all(target, error);
  if (error) return Status::FromErrno(error.value(), "removing", target);
  return Status::Ok();
}

// Round 0 is the warm-up: every method runs once and its result is checked against the source.
// Then the methods take turns, so slow drift (log state, background work) hits all of them alike.
// After every run, untimed: the destination is removed (or kept, see above) and the filesystem
// synced, so the next run does not pay for this one's dirty data or deferred frees.
Status Measure(std::vector<Method>& methods, const Dataset& dataset, const std::string& clones_dir, int repetitions) {
  uint64_t all_runs = methods.size() * (repetitions + 1);
  bool keep = dataset.listing.allocated_bytes * all_runs <= kKeepDestinationsBudget;
  std::vector<std::string> kept;
  for (int round = 0; round <= repetitions; ++round) {
    for (Method& method : methods) {
      MethodResult& result = method.result;
      if (!result.skipped.empty() || !result.error.empty()) continue;
      FE_RETURN_IF_ERROR(CheckInterrupted());
      std::string target = fmt::format("{}/{}-{}", clones_dir, method.slug, round);
      Result<RunOutcome> outcome = method.run(target);
      FE_RETURN_IF_ERROR(CheckInterrupted());
      if (!outcome.ok()) {
        result.error = outcome.status().ToString();
      } else if (round == 0) {
        WarmupCheck check = CheckWarmup(dataset.path, target, method.keeps_metadata, outcome->what);
        result.error = std::move(check.error);
        result.note = std::move(check.note);
      } else {
        result.runs_ms.push_back(Milliseconds(outcome->elapsed));
      }
      if (keep && outcome.ok()) {
        kept.push_back(target);
      } else {
        FE_RETURN_IF_ERROR(RemoveTree(target));
      }
      FE_RETURN_IF_ERROR(SyncFilesystem(clones_dir));
    }
  }
  for (const std::string& target : kept) FE_RETURN_IF_ERROR(RemoveTree(target));
  return SyncFilesystem(clones_dir);
}

struct RunState {
  std::vector<ComparisonTable> tables;
  std::vector<std::string> failures;
};

// One filesystem: create it, generate the datasets, measure, print, tear down (the destructors
// tear down on every early return too).
Status CompareOn(ScratchKind kind, const WorkDirectory& work, const CompareOptions& options, RunState& state) {
  Result<std::unique_ptr<ScratchFilesystem>> scratch = ScratchFilesystem::Open(kind, work.path());
  FE_RETURN_IF_ERROR(scratch.status());
  const ScratchFilesystem& fs = **scratch;
  fmt::print("\n--- {}: {}\n", fs.label(), fs.description());
  std::fflush(stdout);
  auto start = Clock::now();
  Result<std::vector<Dataset>> datasets = GenerateDatasets(fs.root() + "/datasets");
  FE_RETURN_IF_ERROR(datasets.status());
  fmt::print("    datasets generated and synced in {:.1f} s\n",
             std::chrono::duration<double>(Clock::now() - start).count());
  std::string clones_dir = fs.root() + "/clones";
  if (::mkdir(clones_dir.c_str(), 0755) != 0) return Status::FromErrno(errno, "mkdir", clones_dir);

  for (const Dataset& dataset : *datasets) {
    std::vector<Method> methods = MethodsFor(dataset, fs);
    auto measure_start = Clock::now();
    Status measured = Measure(methods, dataset, clones_dir, options.repetitions);
    ComparisonTable table{fs.label(),
                          fs.description(),
                          dataset.name,
                          dataset.description,
                          dataset.listing.files.size(),
                          dataset.listing.directories.size() + 1,
                          dataset.listing.logical_bytes,
                          dataset.listing.allocated_bytes,
                          options.repetitions,
                          std::chrono::duration<double>(Clock::now() - measure_start).count(),
                          {}};
    for (Method& method : methods) {
      if (!method.result.error.empty()) {
        state.failures.push_back(
            fmt::format("{}/{}/{}: {}", fs.label(), dataset.name, method.result.name, method.result.error));
      }
      table.methods.push_back(std::move(method.result));
    }
    FE_RETURN_IF_ERROR(measured);
    fmt::print("{}", FormatComparisonTable(table));
    std::fflush(stdout);
    state.tables.push_back(std::move(table));
  }
  return (*scratch)->Close();
}

std::string FirstLine(const std::string& text) { return text.substr(0, text.find('\n')); }

nlohmann::json HostFacts() {
  struct utsname host;
  ::uname(&host);
  Result<ProcessResult> cp = RunProcess({"cp", "--version"});
  return {{"kernel", host.release},
          {"cpus", ::sysconf(_SC_NPROCESSORS_ONLN)},
          {"cp", cp.ok() ? FirstLine(cp->output) : "unknown"}};
}

void PrintLegend() {
  fmt::print("{}", R"(
Legend: median and p90 (nearest rank) wall time in ms. Every run writes a fresh destination,
removed untimed after its run, or after the dataset's last run when all copies fit (ext4
without a journal allocates inodes slowly for 60 s after mass deletion); syncfs after each run.
cp is timed as a whole process (spawn, exec, wait). durable = storage::tree::CloneOptions::durable (syncs
before reporting success); cp never fsyncs, so the no-fsync rows are the like-for-like
comparison. ours/floor > 1 is our overhead over the bare syscalls; cp-x/ours > 1 means we are
faster than cp. The floor runs on one thread while our clone uses the worker pool, so
ours/floor can go below 1. cp 9.x defaults to --reflink=auto: where 'what it did' says
cp --sparse=always shares all data, it cloned with FICLONE too.
)");
}

}  // namespace

int RunCompare(const CompareOptions& options) {
  InstallInterruptHandlers();
  std::vector<ScratchKind> kinds;
  std::string parent = "/var/tmp";
  std::string why;
  if (::geteuid() != 0) {
    why = "not running as root";
  } else if (!storage::loop::LoopFilesystem::Available(&why)) {
    why = "loop filesystems unavailable: " + why;
  } else {
    why.clear();
  }
  if (!why.empty()) {
    parent = std::filesystem::current_path().string();
    kinds = {ScratchKind::kCurrentDirectory};
    fmt::print("forkbench: {}; measuring only on the current directory's filesystem ({})\n", why, parent);
  } else {
    Result<std::vector<ScratchKind>> parsed = ParseScratchKinds(options.filesystems);
    if (!parsed.ok()) {
      fmt::print(stderr, "forkbench: {}\n", parsed.status().message());
      return 2;
    }
    kinds = std::move(*parsed);
  }

  nlohmann::json host = HostFacts();
  fmt::print("forkbench --compare: {} timed runs per method; kernel {}, {} CPUs, {}\n", options.repetitions,
             host["kernel"].get<std::string>(), host["cpus"].get<long>(), host["cp"].get<std::string>());
  RunState state;
  Result<std::unique_ptr<WorkDirectory>> work = WorkDirectory::Create(parent);
  if (!work.ok()) {
    fmt::print(stderr, "forkbench: {}\n", work.status().ToString());
    return 1;
  }
  for (ScratchKind kind : kinds) {
    Status status = CompareOn(kind, **work, options, state);
    if (Interrupted()) break;
    if (!status.ok()) {
      fmt::print("    FAILED: {}\n", status.ToString());
      state.failures.push_back(status.ToString());
    }
  }
  work->reset();  // removes the work directory; all scratch filesystems are gone by now

  if (Interrupted()) {
    fmt::print(stderr, "forkbench: interrupted; scratch filesystems removed\n");
    return 130;
  }
  PrintLegend();
  if (!options.json_path.empty()) {
    nlohmann::json tables = nlohmann::json::array();
    for (const ComparisonTable& table : state.tables) tables.push_back(ComparisonToJson(table));
    nlohmann::json document = {
        {"host", host}, {"repetitions", options.repetitions}, {"tables", tables}, {"failures", state.failures}};
    std::ofstream file(options.json_path);
    file << document.dump(2) << "\n";
    file.close();
    if (file) {
      fmt::print("results written to {}\n", options.json_path);
    } else {
      state.failures.push_back("could not write " + options.json_path);
    }
  }
  for (const std::string& failure : state.failures) fmt::print(stderr, "forkbench: FAILED {}\n", failure);
  return state.failures.empty() ? 0 : 1;
}

}  // namespace fe::bench
