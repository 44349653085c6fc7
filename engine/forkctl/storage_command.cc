#include "engine/forkctl/storage_command.h"

#include <fmt/format.h>

#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "engine/forkctl/instance_view.h"
#include "storage/registry/backend_registry.h"
#include "storage/registry/backend_selection.h"
#include "storage/dm_thin/dm_thin_device.h"
#include "storage/tree/reflink_probe.h"

namespace fe::engine::forkctl {
namespace {

struct ProbeArguments {
  std::string path;
  bool json = false;
};

int RunProbe(const ProbeArguments& args) {
  Result<storage::tree::FilesystemProbe> probe = storage::tree::ProbeFilesystem(args.path);
  if (!probe.ok()) {
    std::cerr << "forkctl storage probe: " << probe.status().message() << "\n";
    return 1;
  }
  nlohmann::json out = {{"path", args.path},
                        {"filesystem", probe->filesystem},
                        {"reflink", probe->reflink},
                        {"reflink_reason", probe->reason}};
  storage::registry::HostFacts host;
  host.device_mapper = storage::dm_thin::DeviceMapperAvailable(&host.device_mapper_reason);
  host.thin_pool_configured = true;  // listing what a configured thin pool would need
  out["device_mapper"] = {{"available", host.device_mapper}, {"reason", host.device_mapper_reason}};
  nlohmann::json backends = nlohmann::json::object();
  for (const storage::registry::BackendEntry& entry : storage::registry::RegisteredBackends()) {
    Result<storage::registry::BackendDecision> decision =
        storage::registry::DecideBackend(entry.name, *probe, host, args.path);
    backends[std::string(entry.name)] = {{"available", decision.ok()},
                                         {"reason", decision.ok() ? decision->reason : decision.status().message()}};
  }
  out["backends"] = backends;
  // Without a configured thin pool, auto never picks dm-thin.
  Result<storage::registry::BackendDecision> chosen = storage::registry::DecideBackend(
      storage::registry::kAutoBackend, *probe, storage::registry::HostFacts{}, args.path);
  if (chosen.ok()) {
    out["auto"] = {{"backend", chosen->backend}, {"reason", chosen->reason}};
  }
  if (args.json) {
    std::cout << out.dump(2) << "\n";
    return 0;
  }
  std::cout << fmt::format("path        {}\nfilesystem  {}\nreflink     {} ({})\n", args.path, probe->filesystem,
                           probe->reflink ? "yes" : "no", probe->reason);
  for (auto& [name, backend] : backends.items()) {
    std::cout << fmt::format("{:<12}{:<4}{}\n", name, backend["available"].get<bool>() ? "yes" : "no",
                             backend["reason"].get<std::string>());
  }
  if (chosen.ok()) {
    std::cout << fmt::format("auto picks  {}: {}\n", chosen->backend, chosen->reason);
  }
  return 0;
}

}  // namespace

void AddStorageCommand(CLI::App& app, std::shared_ptr<GlobalOptions> options, int* exit_code) {
  CLI::App* storage = app.add_subcommand("storage", "Show forkd's storage backend and pool usage");
  storage->require_subcommand(0, 1);
  auto args = std::make_shared<ProbeArguments>();
  CLI::App* probe = storage->add_subcommand("probe", "Show what the host offers for PATH and what auto picks");
  probe->add_option("PATH", args->path, "A directory on the filesystem to probe")->required();
  probe->add_flag("--json", args->json, "Print JSON");
  probe->callback([args, options, exit_code] {
    args->json = args->json || options->json;  // `forkctl --json storage probe PATH` too
    *exit_code = RunProbe(*args);
  });
  storage->callback([storage, options, exit_code] {
    if (!storage->get_subcommands().empty()) return;  // `storage probe` ran instead
    *exit_code = RunRequest(
        *options, [](const ApiClient& client) { return client.Get("/v1/storage"); }, StorageDetails);
  });
}

}  // namespace fe::engine::forkctl
