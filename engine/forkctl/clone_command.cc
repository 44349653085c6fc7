#include "engine/forkctl/clone_command.h"

#include <fmt/format.h>

#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

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

// Picks the data mode for one clone: reflink when a FICLONE probe on the target's filesystem works
// and source and target share it; otherwise the sparse copy, saying why.
Result<storage::tree::DataMode> ChooseDataMode(const CloneArguments& args, std::string* note) {
  Result<std::string> choice = storage::registry::ParseBackendChoice(args.backend);
  if (!choice.ok()) return choice.status();
  if (*choice == "copy") return storage::tree::DataMode::kCopy;
  Result<storage::tree::FilesystemProbe> probe = storage::tree::ProbeFilesystem(ParentOf(args.target));
  if (!probe.ok()) return probe.status();
  if (probe->reflink) return storage::tree::DataMode::kReflink;
  if (*choice == "reflink") {
    return Status::Unsupported("reflink is not available for " + args.target + ": " + probe->reason);
  }
  *note = "no reflink on " + probe->filesystem + " (" + probe->reason + "): using the sparse copy";
  return storage::tree::DataMode::kCopy;
}

Result<storage::tree::IoEngine> ParseIoEngine(const std::string& text) {
  if (text == "default") return storage::tree::IoEngine::kDefault;
  if (text == "syscalls") return storage::tree::IoEngine::kSyscalls;
  if (text == "io_uring") return storage::tree::IoEngine::kUring;
  return Status::InvalidArgument("unknown io engine '" + text + "': expected default, syscalls or io_uring");
}

int RunClone(const CloneArguments& args) {
  std::string note;
  Result<storage::tree::DataMode> mode = ChooseDataMode(args, &note);
  Result<storage::tree::IoEngine> engine = ParseIoEngine(args.io_engine);
  const Status& invalid = !mode.ok() ? mode.status() : engine.status();
  if (!invalid.ok()) {
    std::cerr << "forkctl clone: " << invalid.message() << "\n";
    return 2;
  }
  if (!note.empty() && !args.json) std::cerr << "forkctl clone: " << note << "\n";
  storage::tree::CloneOptions options;
  options.data_mode = *mode;
  options.io_engine = *engine;
  options.durable = !args.no_sync;
  Result<storage::CloneReport> report = storage::tree::CloneTree(args.source, args.target, options);
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

void AddCloneCommand(CLI::App& app, int* exit_code) {
  auto args = std::make_shared<CloneArguments>();
  CLI::App* command = app.add_subcommand("clone", "Clone a guest directory copy-on-write, atomically");
  command->add_option("SRC", args->source, "Directory to clone")->required();
  command->add_option("DST", args->target, "New directory (must not exist)")->required();
  command->add_option("--backend", args->backend, "auto, reflink or copy")
      ->check(CLI::IsMember({"auto", "reflink", "copy"}));
  command->add_option("--io-engine", args->io_engine, "default, syscalls or io_uring")
      ->check(CLI::IsMember({"default", "syscalls", "io_uring"}));
  command->add_flag("--no-sync", args->no_sync, "Skip the syncs that make the clone crash-durable");
  command->add_flag("--json", args->json, "Print the report as JSON");
  command->callback([args, exit_code] { *exit_code = RunClone(*args); });
}

}  // namespace fe::engine::forkctl
