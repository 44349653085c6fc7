#include "engine/forkctl/clone_command.h"

#include <fmt/format.h>

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "base/fs_util.h"
#include "base/unique_fd.h"
#include "storage/btrfs/subvolume.h"
#include "storage/registry/backend_selection.h"
#include "storage/tree/reflink_probe.h"
#include "storage/tree/tree_cloner.h"

namespace fe::engine::forkctl {
namespace {

struct CloneArguments {
  std::string source;
  std::string target;
  std::string backend = "auto";
  std::string io_engine = "default";
  bool json = false;
  bool no_sync = false;
};

std::string ParentOf(const std::string& path) {
  size_t slash = path.find_last_not_of('/');
  slash = slash == std::string::npos ? std::string::npos : path.rfind('/', slash);
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

// How the one clone is made: a btrfs snapshot of a subvolume, or the tree cloner in a data mode.
struct ClonePlan {
  bool snapshot = false;
  storage::tree::DataMode mode = storage::tree::DataMode::kCopy;
  std::string note = "";  // why, when it is not the obvious choice
};

// A btrfs snapshot when SRC is a subvolume root on btrfs and large enough (or btrfs is forced); else
// reflink when a FICLONE probe on the target's filesystem works; else the sparse copy, saying why.
Result<ClonePlan> PlanClone(const CloneArguments& args) {
  Result<std::string> choice = storage::registry::ParseBackendChoice(args.backend);
  if (!choice.ok()) return choice.status();
  if (*choice == "copy") return ClonePlan{};
  Result<storage::tree::FilesystemProbe> probe = storage::tree::ProbeFilesystem(ParentOf(args.target));
  if (!probe.ok()) return probe.status();
  ClonePlan plan;
  if (*choice == "btrfs" || (*choice == storage::registry::kAutoBackend && probe->filesystem == "btrfs")) {
    UniqueFd source(::open(args.source.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!source) return Status::FromErrno(errno, "open clone source", args.source);
    FE_ASSIGN_OR_RETURN(bool subvolume, storage::btrfs::IsSubvolumeRoot(source.get(), args.source));
    if (*choice == "btrfs") {
      if (subvolume) return ClonePlan{.snapshot = true};
      return Status::Unsupported("a btrfs snapshot of " + args.source +
                                 " needs it to be a subvolume root on btrfs (btrfs subvolume create)");
    }
    const size_t crossover = storage::registry::kBtrfsSnapshotCrossoverEntries;
    if (subvolume) {
      FE_ASSIGN_OR_RETURN(size_t entries, CountEntries(source.get(), crossover, args.source));
      if (entries >= crossover) return ClonePlan{.snapshot = true};
      plan.note = fmt::format("small subvolume ({} entries, crossover {}): reflink is cheaper than a snapshot", entries,
                              crossover);
    } else {
      plan.note = args.source + " is not a subvolume root: cloned file by file";
    }
  }
  if (probe->reflink) {
    plan.mode = storage::tree::DataMode::kReflink;
    return plan;
  }
  if (*choice == "reflink") {
    return Status::Unsupported("reflink is not available for " + args.target + ": " + probe->reason);
  }
  plan.note = "no reflink on " + probe->filesystem + " (" + probe->reason + "): using the sparse copy";
  return plan;
}

// The snapshot under DST's name; synced unless --no-sync, like the tree cloner's clones.
Result<storage::CloneReport> SnapshotClone(const CloneArguments& args) {
  UniqueFd source(::open(args.source.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!source) return Status::FromErrno(errno, "open clone source", args.source);
  const std::string parent = ParentOf(args.target);
  UniqueFd target_parent(::open(parent.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!target_parent) return Status::FromErrno(errno, "open directory", parent);
  std::string name = args.target;
  while (name.size() > 1 && name.back() == '/') name.pop_back();
  name = name.substr(name.rfind('/') == std::string::npos ? 0 : name.rfind('/') + 1);
  FE_ASSIGN_OR_RETURN(storage::CloneReport report,
                      storage::btrfs::SnapshotSubvolume(source.get(), target_parent.get(), name, false, args.target));
  if (!args.no_sync && ::syncfs(target_parent.get()) != 0) return Status::FromErrno(errno, "sync", args.target);
  return report;
}

Result<storage::tree::IoEngine> ParseIoEngine(const std::string& text) {
  if (text == "default") return storage::tree::IoEngine::kDefault;
  if (text == "syscalls") return storage::tree::IoEngine::kSyscalls;
  if (text == "io_uring") return storage::tree::IoEngine::kUring;
  return Status::InvalidArgument("unknown io engine '" + text + "': expected default, syscalls or io_uring");
}

int RunClone(const CloneArguments& args) {
  Result<ClonePlan> plan = PlanClone(args);
  Result<storage::tree::IoEngine> engine = ParseIoEngine(args.io_engine);
  const Status& invalid = !plan.ok() ? plan.status() : engine.status();
  if (!invalid.ok()) {
    std::cerr << "forkctl clone: " << invalid.message() << "\n";
    return 2;
  }
  const std::string& note = plan->note;
  if (!note.empty() && !args.json) std::cerr << "forkctl clone: " << note << "\n";
  Result<storage::CloneReport> report = [&]() -> Result<storage::CloneReport> {
    if (plan->snapshot) return SnapshotClone(args);
    storage::tree::CloneOptions options;
    options.data_mode = plan->mode;
    options.io_engine = *engine;
    options.durable = !args.no_sync;
    return storage::tree::CloneTree(args.source, args.target, options);
  }();
  if (!report.ok()) {
    std::cerr << "forkctl clone: " << report.status().message() << "\n";
    return 1;
  }
  if (args.json) {
    nlohmann::json out = storage::ToJson(*report);
    if (!note.empty()) out["note"] = note;
    std::cout << out.dump(2) << "\n";
  } else {
    std::cout << fmt::format("cloned {} -> {}\n", args.source, args.target) << storage::FormatTable(*report);
  }
  return 0;
}

}  // namespace

void AddCloneCommand(CLI::App& app, std::shared_ptr<GlobalOptions> options, int* exit_code) {
  auto args = std::make_shared<CloneArguments>();
  CLI::App* command = app.add_subcommand("clone", "Clone a guest directory copy-on-write, atomically");
  command->add_option("SRC", args->source, "Directory to clone")->required();
  command->add_option("DST", args->target, "New directory (must not exist)")->required();
  command
      ->add_option("--backend", args->backend,
                   "auto, btrfs (snapshot of a subvolume), reflink or copy; auto snapshots a btrfs subvolume "
                   "of at least the crossover's entries")
      ->check(CLI::IsMember({"auto", "btrfs", "reflink", "copy"}));
  command->add_option("--io-engine", args->io_engine, "default, syscalls or io_uring")
      ->check(CLI::IsMember({"default", "syscalls", "io_uring"}));
  command->add_flag("--no-sync", args->no_sync, "Skip the syncs that make the clone crash-durable");
  command->add_flag("--json", args->json, "Print the report as JSON");
  command->callback([args, options, exit_code] {
    args->json = args->json || options->json;  // `forkctl --json clone` too
    *exit_code = RunClone(*args);
  });
}

}  // namespace fe::engine::forkctl
