#include "engine/forkctl/nodes_command.h"

#include <fmt/format.h>

#include "engine/forkctl/table.h"

namespace fe::engine::forkctl {

void AddNodesCommand(CLI::App& app, std::shared_ptr<GlobalOptions> options, int* exit_code) {
  CLI::App* nodes = app.add_subcommand("nodes", "List the cluster's live nodes (forkd --cluster-etcd)");
  nodes->callback([options, exit_code] {
    auto request = [](const ApiClient& client) { return client.Get("/v1/nodes"); };
    auto render = [](const nlohmann::json& reply) {
      Table table({{"NAME"},
                   {"API"},
                   {"VERSION"},
                   {"BACKEND"},
                   {"FREE", Table::Align::kRight},
                   {"VCPUS USED/BUDGET", Table::Align::kRight},
                   {"TEMPLATES", Table::Align::kRight},
                   {"POOLS", Table::Align::kRight},
                   {"DRAINING"}});
      for (const nlohmann::json& node : reply.value("nodes", nlohmann::json::array())) {
        const nlohmann::json& storage = node.value("storage", nlohmann::json::object());
        const nlohmann::json& cpu = node.value("cpu", nlohmann::json::object());
        table.AddRow({node.value("name", ""), node.value("api", ""), node.value("version", ""),
                      storage.value("backend", ""), FormatBytes(storage.value("free_bytes", uint64_t{0})),
                      fmt::format("{}/{}", cpu.value("used_vcpus", 0), cpu.value("budget_vcpus", 0)),
                      std::to_string(node.value("templates", 0)), std::to_string(node.value("pools", 0)),
                      node.value("draining", false) ? "yes" : "no"});
      }
      return table.Render();
    };
    *exit_code = RunRequest(*options, request, render);
  });
}

}  // namespace fe::engine::forkctl
