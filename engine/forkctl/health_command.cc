#include "engine/forkctl/health_command.h"

#include <fmt/format.h>

namespace fe::engine::forkctl {

void AddHealthCommand(CLI::App& app, std::shared_ptr<GlobalOptions> options, int* exit_code) {
  CLI::App* health = app.add_subcommand("health", "Check that forkd answers");
  health->callback([options, exit_code] {
    auto request = [](const ApiClient& client) -> Result<nlohmann::json> {
      Result<nlohmann::json> reply = client.Get("/v1/healthz");
      if (!reply.ok()) return reply;
      const bool ok = reply->is_object() && reply->value("status", nlohmann::json()) == "ok";
      if (!ok) return Status::Internal("forkd answered /v1/healthz without status ok: " + reply->dump());
      return reply;
    };
    auto render = [options](const nlohmann::json& reply) {
      nlohmann::json count = reply.value("instances", nlohmann::json("?"));
      return fmt::format("forkd ok at {}: {} instance{}\n", options->socket, count.dump(), count == 1 ? "" : "s");
    };
    *exit_code = RunRequest(*options, request, render);
  });
}

}  // namespace fe::engine::forkctl
