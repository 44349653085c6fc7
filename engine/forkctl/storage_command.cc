#include "engine/forkctl/storage_command.h"

#include <fmt/format.h>

#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "engine/forkctl/storage_view.h"
#include "storage/registry/backend_registry.h"
#include "storage/registry/backend_selection.h"
#include "storage/registry/clone_calibration.h"
#include "storage/dm_thin/dm_thin_device.h"
#include "storage/tree/reflink_probe.h"

namespace fe::engine::forkctl {
namespace {

struct ProbeArguments {
  std::string path;
  bool json = false;
  bool measure = true;
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
  // What forkd's auto would pick for this path as its volumes root, without a configured thin pool.
  Result<storage::registry::BackendDecision> chosen = storage::registry::DecideBackend(
      storage::registry::kAutoBackend, *probe, storage::registry::ProbeHost(args.path, false), args.path);
  if (chosen.ok()) {
    out["auto"] = {{"backend", chosen->backend}, {"reason", chosen->reason}};
  }
  // The clones forkd times at start on its volumes root, timed here on PATH.
  std::string measure_error;
  if (args.measure) {
    Result<storage::registry::CloneCalibration> calibration = storage::registry::CalibrateCloneCosts(args.path);
    if (calibration.ok()) {
      out["measured_costs"] = storage::registry::ToJson(*calibration);
    } else {
      measure_error = calibration.status().message();
      out["measured_costs"] = {{"error", measure_error}};
    }
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
  if (!measure_error.empty()) std::cout << "measured    nothing: " << measure_error << "\n";
  if (out.contains("measured_costs")) std::cout << MeasuredCostsLines(out["measured_costs"]);
  return 0;
}

}  // namespace

void AddStorageCommand(CLI::App& app, std::shared_ptr<GlobalOptions> options, int* exit_code) {
  CLI::App* storage = app.add_subcommand("storage", "Show forkd's storage backend and pool usage");
  storage->require_subcommand(0, 1);
  auto args = std::make_shared<ProbeArguments>();
  CLI::App* probe = storage->add_subcommand(
      "probe", "Show what the host offers for PATH, what auto picks and what a clone costs there");
  probe->add_option("PATH", args->path, "A directory on the filesystem to probe")->required();
  probe->add_flag("--json", args->json, "Print JSON");
  probe->add_flag("!--no-measure", args->measure,
                  "Do not time clones of small calibration trees under PATH (it is then only read)");
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
