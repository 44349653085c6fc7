#include "bench/backends.h"

#include <btrfsutil.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <memory>
#include <random>
#include <thread>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "base/process.h"
#include "bench/backends_report.h"
#include "bench/datasets.h"
#include "bench/external_command.h"
#include "bench/interrupt.h"
#include "bench/scratch_filesystem.h"
#include "bench/tree_facts.h"
#include "storage/registry/backend_selection.h"
#include "storage/btrfs/btrfs_backend.h"
#include "storage/tree/tree_backend.h"

namespace fe::bench {
namespace {

using Clock = std::chrono::steady_clock;

// One source volume.
struct Input {
  std::string name;  // volume name, also the table's input name
  std::string description;
  std::function<Status(const std::string& path)> fill;
  TreeListing listing;
};

// One data root and every backend measured on it.
struct DataRoot {
  std::string path;
  bool btrfs = false;
  bool reflink = false;                         // FICLONE works here
  std::unique_ptr<storage::Backend> snapshot;   // btrfs only: BtrfsBackend that always snapshots
  std::unique_ptr<storage::Backend> tree;       // reflink, or copy where there is no reflink
  std::unique_ptr<storage::Backend> automatic;  // OpenBackend(kAuto)
  // Creates the inputs: subvolumes on btrfs, so the btrfs backend can snapshot them.
  storage::Backend& owner() const { return snapshot ? *snapshot : *tree; }
};

struct RunOutcome {
  std::chrono::nanoseconds elapsed{0};
  std::string what;  // the mechanism the backend reports
};

struct Method {
  BackendRow row;
  bool cheap = false;  // the warm-up took under kCheapRunMs
  std::function<Result<RunOutcome>(const std::string& volume)> clone;
  std::function<Status(const std::string& volume)> remove;  // untimed
};

double Milliseconds(std::chrono::nanoseconds elapsed) { return elapsed.count() / 1e6; }

// Runs that take milliseconds (snapshots, small trees) get kCheapRunFactor times the repetitions:
// they cost next to nothing, and a transaction commit's latency makes them the noisiest.
constexpr double kCheapRunMs = 100;
constexpr int kCheapRunFactor = 3;

Method BackendMethod(std::string name, std::string slug, Role role, storage::Backend& backend,
                     const std::string& source, std::string command) {
  Method method;
  method.row.name = std::move(name);
  method.row.slug = std::move(slug);
  method.row.role = role;
  method.row.command = std::move(command);
  method.clone = [&backend, source](const std::string& volume) -> Result<RunOutcome> {
    auto start = Clock::now();
    Result<storage::CloneReport> report = backend.Clone(source, volume);
    auto elapsed = Clock::now() - start;
    FE_RETURN_IF_ERROR(report.status());
    return RunOutcome{elapsed, report->mechanism};
  };
  method.remove = [&backend](const std::string& volume) { return backend.Remove(volume); };
  return method;
}

// A command timed as a whole process: argv followed by the source and the new volume's path.
Method CommandMethod(std::string slug, std::vector<std::string> argv, const DataRoot& root, const std::string& source,
                     bool baseline, std::function<Status(const std::string& volume)> remove) {
  Method method;
  std::vector<std::string> shown = argv;
  shown.insert(shown.end(), {"SRC", "DST"});
  method.row.name = CommandLine(argv);
  method.row.slug = std::move(slug);
  method.row.role = Role::kTool;
  method.row.baseline = baseline;
  method.row.command = CommandLine(shown);
  method.clone = [argv, path = root.path, source](const std::string& volume) -> Result<RunOutcome> {
    std::vector<std::string> full = argv;
    full.insert(full.end(), {path + "/" + source, path + "/" + volume});
    Result<std::chrono::nanoseconds> elapsed = TimeCommand(full);
    FE_RETURN_IF_ERROR(elapsed.status());
    return RunOutcome{*elapsed, ""};
  };
  method.remove = std::move(remove);
  return method;
}

std::vector<Method> MethodsFor(const DataRoot& root, const Input& input, bool with_commands) {
  std::vector<Method> methods;
  const std::string& source = input.name;
  if (root.btrfs) {
    methods.push_back(BackendMethod("btrfs backend (always snapshot)", "btrfs-snapshot", Role::kBackend, *root.snapshot,
                                    source, "BtrfsBackend::Open(root, reason, 0)->Clone"));
  }
  std::string tree(root.tree->Name());
  // Without reflink, auto opens exactly the copy backend (OpenTreeBackend(kCopy)): one row.
  bool auto_is_tree = !root.btrfs && !root.reflink && root.automatic->Name() == tree;
  methods.push_back(BackendMethod(tree + (auto_is_tree ? " backend (= auto)" : " backend"), tree, Role::kBackend,
                                  *root.tree, source,
                                  fmt::format("OpenTreeBackend(root, DataMode::k{}, reason, {})->Clone",
                                              root.reflink ? "Reflink" : "Copy", root.reflink)));
  methods.back().row.also_auto = auto_is_tree;
  if (!auto_is_tree) {
    methods.push_back(BackendMethod(fmt::format("auto ({} backend)", root.automatic->Name()), "auto", Role::kAuto,
                                    *root.automatic, source, "OpenBackend(root, auto)->Clone"));
  }
  if (!with_commands) return methods;
  if (root.btrfs) {
    methods.push_back(
        CommandMethod("btrfs-cli", {"btrfs", "subvolume", "snapshot"}, root, source, false,
                      [path = root.path](const std::string& volume) {
                        return TimeCommand({"btrfs", "subvolume", "delete", path + "/" + volume}).status();
                      }));
  }
  std::vector<std::string> cp = {"cp", "-a", "--reflink=always"};
  if (!root.reflink) cp = {"cp", "-a", "--sparse=always", "--reflink=never"};
  methods.push_back(CommandMethod(root.reflink ? "cp-reflink" : "cp-copy", cp, root, source, true,
                                  [&tree = *root.tree](const std::string& volume) { return tree.Remove(volume); }));
  return methods;
}

// Deleted subvolumes are dropped by btrfs' cleaner thread, which a plain syncfs does not wake (it
// would run at the next periodic commit, up to 30 s later, in the middle of some timed run).
// BTRFS_IOC_SYNC commits and wakes it; wait until no deleted subvolume is left, then commit what
// the cleaner changed last, so that no timed commit (a snapshot is one) pays for it.
Status WaitForBtrfsCleaner(const std::string& root) {
  auto fail = [&root](btrfs_util_error error) {
    return Status::Io(fmt::format("waiting for btrfs' cleaner under {}: {}", root, btrfs_util_strerror(error)));
  };
  for (auto deadline = Clock::now() + std::chrono::seconds(10); Clock::now() < deadline;) {
    if (btrfs_util_error error = btrfs_util_sync(root.c_str())) return fail(error);
    uint64_t* ids = nullptr;
    size_t count = 0;
    btrfs_util_error error = btrfs_util_deleted_subvolumes(root.c_str(), &ids, &count);
    std::free(ids);
    if (error != BTRFS_UTIL_OK) return fail(error);
    if (count == 0) {
      error = btrfs_util_sync(root.c_str());
      return error == BTRFS_UTIL_OK ? Status::Ok() : fail(error);
    }
    FE_RETURN_IF_ERROR(CheckInterrupted());
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return Status::Io("deleted subvolumes under " + root + " not cleaned within 10 s");
}

// The methods of one input.
struct Task {
  const Input* input = nullptr;
  std::vector<Method> methods;
};

// Round 0 is the warm-up, checked against the source. Then every run of every input takes its
// turn once per round (expensive ones every kCheapRunFactor-th round), in an order shuffled anew
// each round (fixed seed): drift and other load hit every row alike, tree sizes are compared under
// the same conditions, and no row always follows the same neighbour (on btrfs a run right after
// removing a big tree is slower, even after syncing). After every run, untimed: the volume is
// removed, btrfs' cleaner drained and the filesystem synced.
Status Measure(std::vector<Task>& tasks, const DataRoot& root, int repetitions) {
  std::vector<std::pair<Task*, Method*>> runs;
  for (Task& task : tasks) {
    for (Method& method : task.methods) runs.emplace_back(&task, &method);
  }
  std::mt19937 random(20261125);
  for (int round = 0; round <= repetitions * kCheapRunFactor; ++round) {
    if (round > 0) std::shuffle(runs.begin(), runs.end(), random);
    for (auto [task, method] : runs) {
      FE_RETURN_IF_ERROR(CheckInterrupted());
      BackendRow& row = method->row;
      if (!row.error.empty() || (!method->cheap && round % kCheapRunFactor != 0)) continue;
      std::string volume = fmt::format("{}-{}-{}", task->input->name, row.slug, round);
      Result<RunOutcome> outcome = method->clone(volume);
      FE_RETURN_IF_ERROR(CheckInterrupted());
      if (!outcome.ok()) {
        row.error = outcome.status().ToString();
        continue;  // Clone is atomic; what a failed command left goes with the filesystem
      }
      if (round == 0) {
        method->cheap = Milliseconds(outcome->elapsed) < kCheapRunMs;
        std::string clone = root.owner().Path(volume);
        WarmupCheck check = CheckWarmup(root.owner().Path(task->input->name), clone, true, outcome->what);
        row.error = std::move(check.error);
        row.note = std::move(check.note);
      } else {
        row.runs_ms.push_back(Milliseconds(outcome->elapsed));
      }
      FE_RETURN_IF_ERROR(method->remove(volume).Annotate("removing " + volume));
      FE_RETURN_IF_ERROR(root.btrfs ? WaitForBtrfsCleaner(root.path) : SyncFilesystem(root.path));
    }
  }
  return Status::Ok();
}

std::vector<Input> InputsFor(const DataRoot& root, const BackendsOptions& options) {
  std::vector<Input> inputs = {
      {"guest-dir",
       "10 GiB sparse disk.raw (50 x 4 MiB data) + 1 GiB memory.bin + 5 small files",
       [](const std::string& path) { return FillGuestDir(path); },
       {}},
      {"small-files",
       "10,000 files x 4 KiB in 100 directories",
       [](const std::string& path) { return FillSmallTree(path, 10000); },
       {}},
  };
  if (!root.btrfs) return inputs;
  for (int files : options.tree_sizes) {
    if (files == 10000) continue;  // the small-files input is that point of the sweep
    inputs.push_back({fmt::format("tree-{}", files),
                      fmt::format("{} files x 4 KiB, up to 100 per directory", files),
                      [files](const std::string& path) { return FillSmallTree(path, files); },
                      {}});
  }
  return inputs;
}

Status OpenBackends(DataRoot& root) {
  if (root.btrfs) {
    auto snapshot = storage::btrfs::BtrfsBackend::Open(root.path, "forkbench: forced, always snapshot", 0);
    FE_RETURN_IF_ERROR(snapshot.status());
    root.snapshot = std::move(*snapshot);
  }
  auto tree = storage::tree::OpenTreeBackend(
      root.path, root.reflink ? storage::tree::DataMode::kReflink : storage::tree::DataMode::kCopy, "forkbench: forced",
      root.reflink);
  FE_RETURN_IF_ERROR(tree.status());
  root.tree = std::move(*tree);
  auto automatic = storage::registry::OpenBackend(root.path, storage::registry::kAutoBackend);
  FE_RETURN_IF_ERROR(automatic.status());
  root.automatic = std::move(*automatic);
  return Status::Ok();
}

std::string LoadAverage() {
  std::ifstream file("/proc/loadavg");
  std::string one_minute = "?";
  file >> one_minute;
  return one_minute;
}

// One filesystem: create it, its data root and input volumes, measure, print, tear down (the
// destructors tear down on every early return too).
Status RunOn(ScratchKind kind, const WorkDirectory& work, const BackendsOptions& options,
             std::vector<BackendTable>& tables, std::vector<std::string>& failures) {
  Result<std::unique_ptr<ScratchFilesystem>> scratch = ScratchFilesystem::Open(kind, work.path());
  FE_RETURN_IF_ERROR(scratch.status());
  const ScratchFilesystem& fs = **scratch;
  fmt::print("\n--- {}: {}\n", fs.label(), fs.description());
  std::fflush(stdout);
  auto start = Clock::now();
  DataRoot root;
  root.path = fs.root() + "/data";
  root.btrfs = fs.probe().filesystem == "btrfs";
  root.reflink = fs.probe().reflink;
  FE_RETURN_IF_ERROR(OpenBackends(root));
  std::vector<Input> inputs = InputsFor(root, options);
  for (Input& input : inputs) {
    FE_RETURN_IF_ERROR(root.owner().Create(input.name));
    FE_RETURN_IF_ERROR(input.fill(root.owner().Path(input.name)));
  }
  FE_RETURN_IF_ERROR(SyncFilesystem(root.path));
  for (Input& input : inputs) {
    Result<TreeListing> listing = ListTree(root.owner().Path(input.name));
    FE_RETURN_IF_ERROR(listing.status());
    input.listing = std::move(*listing);
  }
  fmt::print("    data root {}: auto chose {} ({}); inputs generated and synced in {:.1f} s\n", root.path,
             root.automatic->Name(), root.automatic->SelectionReason(),
             std::chrono::duration<double>(Clock::now() - start).count());
  std::fflush(stdout);

  std::vector<Task> tasks;
  for (const Input& input : inputs) {
    tasks.push_back({&input, MethodsFor(root, input, !input.name.starts_with("tree-"))});
  }
  start = Clock::now();
  std::string load_before = LoadAverage();
  Status measured = Measure(tasks, root, options.repetitions);
  // Other work on the machine shows here (this run alone keeps it near 1): rerun if it was high.
  fmt::print("    measured in {:.0f} s; 1-minute load average {} before, {} after\n",
             std::chrono::duration<double>(Clock::now() - start).count(), load_before, LoadAverage());
  for (Task& task : tasks) {
    const Input& input = *task.input;
    BackendTable table{fs.label(),
                       fs.description(),
                       input.name,
                       input.description,
                       input.listing.files.size(),
                       input.listing.files.size() + input.listing.directories.size(),
                       {}};
    for (Method& method : task.methods) {
      if (!method.row.error.empty()) {
        failures.push_back(fmt::format("{}/{}/{}: {}", fs.label(), input.name, method.row.name, method.row.error));
      }
      table.rows.push_back(std::move(method.row));
    }
    // The sweep's trees are shown together in FormatSweep.
    if (measured.ok() && !input.name.starts_with("tree-")) fmt::print("{}", FormatBackendTable(table));
    tables.push_back(std::move(table));
  }
  std::fflush(stdout);
  FE_RETURN_IF_ERROR(measured);
  root = DataRoot{};  // the backends hold the data root open, which would keep it from unmounting
  return (*scratch)->Close();
}

std::vector<SweepPoint> SweepOf(const std::vector<BackendTable>& tables, const BackendsOptions& options) {
  std::vector<int> sizes = options.tree_sizes;
  std::sort(sizes.begin(), sizes.end());
  std::vector<SweepPoint> sweep;
  for (int files : sizes) {
    std::string input = files == 10000 ? "small-files" : fmt::format("tree-{}", files);
    for (const BackendTable& table : tables) {
      if (table.filesystem == "btrfs" && table.input == input) {
        sweep.push_back({static_cast<uint64_t>(files), &table});
      }
    }
  }
  return sweep;
}

std::string FirstLine(const std::string& text) { return text.substr(0, text.find('\n')); }

std::string VersionOf(const std::vector<std::string>& argv) {
  Result<ProcessResult> result = RunProcess(argv);
  return result.ok() ? FirstLine(result->output) : "unknown";
}

void PrintLegend() {
  fmt::print("{}", R"(
Legend: median and p90 (nearest rank) wall time in ms of Backend::Clone(parent, volume) into a
fresh volume under one data root per filesystem, or of the command as a whole process (spawn,
exec, wait). After one verified warm-up per row, all rows of a filesystem run in an order shuffled
anew each round; rows under 100 ms run three times as often. After every run, untimed: the volume
is removed (Backend::Remove; `btrfs subvolume delete` for the CLI snapshot), btrfs' cleaner is
drained and committed, the filesystem synced. The btrfs inputs are subvolumes. "vs best backend":
against the fastest forced single backend of the table (btrfs snapshot, reflink or copy);
"cp-x/this" > 1 means faster than that cp. Backends are durable (they sync what they must before
reporting success); cp never syncs, which is most of the gap on ext4's guest directory. On ext4
auto opens the copy backend itself, so one row stands for both.
)");
}

}  // namespace

int RunBackends(const BackendsOptions& options) {
  InstallInterruptHandlers();
  std::string why;
  if (::geteuid() != 0) {
    why = "needs root (loop-mounted filesystems, btrfs subvolumes)";
  } else if (!storage::loop::LoopFilesystem::Available(&why)) {
    why = "loop filesystems unavailable: " + why;
  }
  if (!why.empty()) {
    fmt::print(stderr, "forkbench --backends: {}\n", why);
    return 1;
  }
  Result<std::vector<ScratchKind>> kinds = ParseScratchKinds(options.filesystems);
  if (!kinds.ok()) {
    fmt::print(stderr, "forkbench: {}\n", kinds.status().message());
    return 2;
  }

  struct utsname host;
  ::uname(&host);
  nlohmann::json host_facts = {{"kernel", host.release},
                               {"cpus", ::sysconf(_SC_NPROCESSORS_ONLN)},
                               {"cp", VersionOf({"cp", "--version"})},
                               {"btrfs", VersionOf({"btrfs", "--version"})}};
  fmt::print(
      "forkbench --backends: {} timed runs per method ({} for runs under {:.0f} ms); kernel {}, {} "
      "CPUs, {}, {}\n",
      options.repetitions, options.repetitions * kCheapRunFactor, kCheapRunMs, host.release,
      ::sysconf(_SC_NPROCESSORS_ONLN), host_facts["cp"].get<std::string>(), host_facts["btrfs"].get<std::string>());
  auto start = Clock::now();
  std::vector<BackendTable> tables;
  std::vector<std::string> failures;
  Result<std::unique_ptr<WorkDirectory>> work = WorkDirectory::Create("/var/tmp");
  if (!work.ok()) {
    fmt::print(stderr, "forkbench: {}\n", work.status().ToString());
    return 1;
  }
  for (ScratchKind kind : *kinds) {
    Status status = RunOn(kind, **work, options, tables, failures);
    if (Interrupted()) break;
    if (!status.ok()) {
      fmt::print("    FAILED: {}\n", status.ToString());
      failures.push_back(status.ToString());
    }
  }
  work->reset();  // removes the work directory; all scratch filesystems are gone by now
  if (Interrupted()) {
    fmt::print(stderr, "forkbench: interrupted; scratch filesystems removed\n");
    return 130;
  }

  std::vector<SweepPoint> sweep = SweepOf(tables, options);
  fmt::print("{}{}", FormatSweep(sweep), FormatTargets(tables, sweep));
  PrintLegend();
  fmt::print("whole run: {:.0f} s\n", std::chrono::duration<double>(Clock::now() - start).count());
  if (!options.json_path.empty()) {
    nlohmann::json document = BackendsToJson(tables, sweep);
    document["host"] = host_facts;
    document["repetitions"] = options.repetitions;
    document["failures"] = failures;
    std::ofstream file(options.json_path);
    file << document.dump(2) << "\n";
    file.close();
    if (file) {
      fmt::print("results written to {}\n", options.json_path);
    } else {
      failures.push_back("could not write " + options.json_path);
    }
  }
  for (const std::string& failure : failures) fmt::print(stderr, "forkbench: FAILED {}\n", failure);
  return failures.empty() ? 0 : 1;
}

}  // namespace fe::bench
