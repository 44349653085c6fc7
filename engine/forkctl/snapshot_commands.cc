#include "engine/forkctl/snapshot_commands.h"

#include <fmt/format.h>

#include <iostream>
#include <vector>

#include "engine/forkctl/json_fields.h"
#include "engine/forkctl/table.h"

namespace fe::engine::forkctl {
namespace {

using nlohmann::json;

struct CreateArguments {
  std::string instance;
  std::string name;
  std::vector<std::string> labels;
};

struct ListArguments {
  std::string instance;
  std::vector<std::string> labels;
};

std::string LabelsText(const json& labels) {
  std::string text;
  if (!labels.is_object()) return "-";
  for (const auto& [key, value] : labels.items()) {
    text += (text.empty() ? "" : ",") + key + "=" + (value.is_string() ? value.get<std::string>() : "?");
  }
  return text.empty() ? "-" : text;
}

// Every snapshot the filters match, a page at a time: {"snapshots": [...]} as one reply.
Result<json> ListSnapshots(const ApiClient& client, const ListArguments& args) {
  std::string query = "limit=500";
  for (const std::string& selector : args.labels) query += "&label=" + EncodePathSegment(selector);
  if (!args.instance.empty()) query += "&instance=" + EncodePathSegment(args.instance);
  return GetEveryPage(client, "snapshots", query);
}

// Deletes each snapshot in turn; one failure does not stop the others, but makes the exit code 1.
int RunRemove(const GlobalOptions& options, const std::vector<std::string>& ids) {
  ApiClient client(options.socket);
  int exit_code = 0;
  for (const std::string& id : ids) {
    Result<json> reply = client.Delete("/v1/snapshots/" + EncodePathSegment(id));
    if (!reply.ok()) {
      exit_code = PrintError(reply.status());
    } else if (!options.json) {
      std::cout << "removed snapshot " << id << "\n";
    }
  }
  return exit_code;
}

}  // namespace

std::string SnapshotsTable(const json& snapshots) {
  Table table({{"NAME"}, {"ID"}, {"INSTANCE"}, {"TAKEN IN"}, {"STATE"}, {"TAKEN AT"}, {"LABELS"}});
  for (const json& snapshot : Elements(snapshots)) {
    table.AddRow({Text(snapshot, "name"), Text(snapshot, "id"), Text(snapshot, "instance_name"),
                  Text(snapshot, "taken_in"), Text(snapshot, "state"), Text(snapshot, "taken_at"),
                  LabelsText(Field(snapshot, "labels"))});
  }
  return table.Render();
}

std::string SnapshotTakenSummary(const json& reply) {
  const json& snapshot = Field(reply, "snapshot");
  const json& phases = Field(reply, "phases");
  const json& paused = Field(phases, "source_pause_us");
  const json& total = Field(phases, "total_us");
  return fmt::format("snapshot {} ({}) of {}: {}, paused {}, took {} ({})\n", Text(snapshot, "name"),
                     Text(snapshot, "id"), Text(snapshot, "instance_name"), Text(snapshot, "state"),
                     paused.is_number_integer() ? FormatMillis(paused.get<int64_t>()) : "-",
                     total.is_number_integer() ? FormatMillis(total.get<int64_t>()) : "-", Text(reply, "mechanism"));
}

void AddSnapshotCommands(CLI::App& app, std::shared_ptr<GlobalOptions> options, int* exit_code) {
  CLI::App* snapshot = app.add_subcommand("snapshot", "Immutable snapshots of instances: create, ls, rm");
  snapshot->require_subcommand(1);

  auto create_args = std::make_shared<CreateArguments>();
  CLI::App* create = snapshot->add_subcommand(
      "create", "Snapshot an instance (Running: paused only for the clone where the live path serves it)");
  create->add_option("INSTANCE", create_args->instance, "Instance id or name")->required();
  create->add_option("--name", create_args->name, "Snapshot name, unique among the instance's snapshots")->required();
  create->add_option("--label", create_args->labels, "A label key=value laid over the instance's (repeat it)");
  create->callback([options, exit_code, create_args] {
    Result<json> labels = LabelsObject(create_args->labels);
    if (!labels.ok()) {
      *exit_code = PrintError(labels.status());
      return;
    }
    json body = {{"name", create_args->name}};
    if (!labels->empty()) body["labels"] = *labels;
    *exit_code = RunRequest(
        *options,
        [&](const ApiClient& client) { return client.Post(InstancePath(create_args->instance, "/snapshots"), body); },
        SnapshotTakenSummary);
  });

  auto list_args = std::make_shared<ListArguments>();
  CLI::App* ls = snapshot->add_subcommand("ls", "List snapshots");
  ls->add_option("--instance", list_args->instance, "Only the snapshots of this instance (id, or a living one's name)");
  ls->add_option("-l,--label", list_args->labels, "Only those with this label: key=value, or key with any value");
  ls->callback([options, exit_code, list_args] {
    *exit_code = RunRequest(
        *options, [&](const ApiClient& client) { return ListSnapshots(client, *list_args); },
        [](const json& reply) { return SnapshotsTable(Field(reply, "snapshots")); });
  });

  auto removed = std::make_shared<std::vector<std::string>>();
  CLI::App* rm = snapshot->add_subcommand("rm", "Delete snapshots (their instance and forks are not affected)");
  rm->add_option("ID", *removed, "Snapshot ids")->required();
  rm->callback([options, exit_code, removed] { *exit_code = RunRemove(*options, *removed); });
}

}  // namespace fe::engine::forkctl
