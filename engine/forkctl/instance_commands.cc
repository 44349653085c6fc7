#include "engine/forkctl/instance_commands.h"

#include <fmt/format.h>

#include <filesystem>
#include <iostream>
#include <string>
#include <vector>

#include "engine/forkctl/instance_view.h"

namespace fe::engine::forkctl {
namespace {

using nlohmann::json;

struct CreateArguments {
  std::string name;
  std::string hypervisor;
  std::string import_dir;
  std::string state;
  int vcpus = 0;
  bool as_template = false;
  std::string node;
  std::vector<std::string> labels;
  int64_t ttl_s = 0;
  int64_t idle_standby_s = 0;
};

struct UpdateArguments {
  std::string target;
  int64_t ttl_s = 0;
  bool no_ttl = false;
  int64_t idle_standby_s = -1;  // -1: unchanged
  std::vector<std::string> labels;
  std::vector<std::string> unlabels;
};

int RunUpdate(const GlobalOptions& options, const UpdateArguments& args) {
  json body = json::object();
  if (args.no_ttl) body["ttl_s"] = nullptr;
  if (args.ttl_s > 0) body["ttl_s"] = args.ttl_s;
  if (args.idle_standby_s >= 0) body["idle_standby_s"] = args.idle_standby_s;
  Result<json> labels = LabelsObject(args.labels);
  if (!labels.ok()) return PrintError(labels.status());
  for (const std::string& key : args.unlabels) (*labels)[key] = nullptr;
  if (!labels->empty()) body["labels"] = *labels;
  if (args.ttl_s > 0) body["ttl_s"] = args.ttl_s;
  if (args.idle_standby_s > 0) body["idle_standby_s"] = args.idle_standby_s;
  return RunRequest(
      options, [&](const ApiClient& client) { return client.Patch(InstancePath(args.target), body); }, InstanceDetails);
}

struct ListArguments {
  bool with_usage = false;
  std::vector<std::string> labels;  // selectors: key=value or key
  std::string state;
  std::string parent;
  std::string ancestor;
};

// Every instance the filters match, a page at a time: {"instances": [...]} as one reply.
Result<json> ListInstances(const ApiClient& client, const ListArguments& args) {
  std::string query = "limit=500";
  auto add = [&](const char* name, const std::string& value) {
    if (!value.empty()) query += std::string("&") + name + "=" + EncodePathSegment(value);
  };
  for (const std::string& selector : args.labels) add("label", selector);
  add("state", args.state);
  add("parent", args.parent);
  add("ancestor", args.ancestor);
  return GetEveryPage(client, "instances", query);
}

int RunCreate(const GlobalOptions& options, const CreateArguments& args) {
  json body = {{"name", args.name}, {"hypervisor", args.hypervisor}};
  if (!args.import_dir.empty()) {
    // forkd resolves nothing relative to the client's working directory.
    std::error_code error;
    std::filesystem::path absolute = std::filesystem::absolute(args.import_dir, error);
    if (error) return PrintError(Status::InvalidArgument(args.import_dir + ": " + error.message()));
    body["import_dir"] = absolute.lexically_normal().string();
  }
  if (!args.state.empty()) body["state"] = args.state;
  if (args.vcpus > 0) body["vcpus"] = args.vcpus;
  if (args.as_template) body["template"] = true;
  if (!args.node.empty()) body["node"] = args.node;
  Result<json> labels = LabelsObject(args.labels);
  if (!labels.ok()) return PrintError(labels.status());
  if (!labels->empty()) body["labels"] = *labels;
  return RunRequest(
      options, [&](const ApiClient& client) { return client.Post("/v1/instances", body); },
      [](const json& instance) { return "created " + InstanceSummary(instance); });
}

// Deletes each instance in turn; one failure does not stop the others, but makes the exit code 1.
int RunRemove(const GlobalOptions& options, const std::vector<std::string>& targets) {
  ApiClient client(options.socket);
  int exit_code = 0;
  for (const std::string& target : targets) {
    Result<json> reply = client.Delete(InstancePath(target));
    if (!reply.ok()) {
      exit_code = PrintError(reply.status());
    } else if (!options.json) {
      std::cout << "removed " << target << "\n";
    }
  }
  return exit_code;
}

void AddLifecycleCommand(CLI::App& app, std::shared_ptr<GlobalOptions> options, int* exit_code, const std::string& verb,
                         const std::string& help) {
  auto target = std::make_shared<std::string>();
  CLI::App* command = app.add_subcommand(verb, help);
  command->add_option("ID", *target, "Instance id or name")->required();
  command->callback([options, exit_code, target, verb] {
    *exit_code = RunRequest(
        *options,
        [&](const ApiClient& client) { return client.Post(InstancePath(*target, "/" + verb), json::object()); },
        InstanceSummary);
  });
}

}  // namespace

void AddInstanceCommands(CLI::App& app, std::shared_ptr<GlobalOptions> options, int* exit_code) {
  auto list_args = std::make_shared<ListArguments>();
  CLI::App* ls = app.add_subcommand("ls", "List instances");
  ls->add_flag("--usage", list_args->with_usage,
               "Add each instance's allocated, shared and exclusive bytes (walks the volumes)");
  ls->add_option("-l,--label", list_args->labels, "Only those with this label: key=value, or key with any value");
  ls->add_option("--state", list_args->state, "Only those in this state")
      ->check(CLI::IsMember({"Creating", "Stopped", "Standby", "Running"}));
  ls->add_option("--parent", list_args->parent, "Only forks of this instance (id or name)");
  ls->add_option("--ancestor", list_args->ancestor,
                 "Only descendants of this instance (id, which may be deleted, or a living one's name)");
  ls->callback([options, exit_code, list_args] {
    json usage;  // id -> Usage reply
    *exit_code = RunRequest(
        *options,
        [&](const ApiClient& client) -> Result<json> {
          Result<json> reply = ListInstances(client, *list_args);
          if (!reply.ok() || !list_args->with_usage) return reply;
          usage = json::object();
          for (const json& instance : InstancesOf(*reply)) {
            const std::string id = instance.value("id", "");
            // One that went away meanwhile shows "?".
            if (Result<json> measured = client.Get(InstancePath(id, "/usage")); measured.ok()) usage[id] = *measured;
          }
          return reply;
        },
        [&usage](const json& reply) { return InstancesTable(InstancesOf(reply), usage); });
  });

  auto shown = std::make_shared<std::string>();
  CLI::App* show = app.add_subcommand("show", "Show one instance and what its volume holds on disk");
  show->add_option("ID", *shown, "Instance id or name")->required();
  show->callback([options, exit_code, shown] {
    *exit_code = RunRequest(
        *options,
        [&](const ApiClient& client) -> Result<json> {
          Result<json> instance = client.Get(InstancePath(*shown));
          // --json prints the reply as the API gives it; the text view adds the volume's usage.
          if (!instance.ok() || options->json) return instance;
          if (Result<json> usage = client.Get(InstancePath(*shown, "/usage")); usage.ok())
            (*instance)["usage"] = *usage;
          return instance;
        },
        InstanceDetails);
  });

  auto measured = std::make_shared<std::string>();
  CLI::App* usage =
      app.add_subcommand("usage", "What an instance's volume holds on disk: allocated, shared, exclusive");
  usage->add_option("ID", *measured, "Instance id or name")->required();
  usage->callback([options, exit_code, measured] {
    *exit_code = RunRequest(
        *options, [&](const ApiClient& client) { return client.Get(InstancePath(*measured, "/usage")); }, UsageDetails);
  });

  auto create_args = std::make_shared<CreateArguments>();
  CLI::App* create = app.add_subcommand("create", "Create an instance, empty or by importing a guest directory");
  create->add_option("NAME", create_args->name, "Instance name (DNS label)")->required();
  create->add_option("--hypervisor", create_args->hypervisor, "cloud-hypervisor, qemu or firecracker")->required();
  create->add_option("--import", create_args->import_dir, "Guest directory to clone in (it is not modified)");
  create->add_flag("--template", create_args->as_template,
                   "Mark it a template: it never runs, is forked, and through forkrouter may be replicated");
  create->add_option("--node", create_args->node, "Through forkrouter: the cluster node to create it on");
  create->add_option("--vcpus", create_args->vcpus, "vCPUs the instance counts against a pool")
      ->check(CLI::PositiveNumber);
  create->add_option("--label", create_args->labels, "A label key=value (repeat it for more)");
  create->add_option("--ttl", create_args->ttl_s, "Seconds until forkd deletes it")->check(CLI::PositiveNumber);
  create
      ->add_option("--idle-standby", create_args->idle_standby_s,
                   "Seconds of an idle VMM (almost no CPU) after which forkd stands it by")
      ->check(CLI::PositiveNumber);
  create->add_option("--state", create_args->state,
                     "Stopped, Standby or Running (default: Standby when the import holds a snapshot)");
  create->callback([options, exit_code, create_args] { *exit_code = RunCreate(*options, *create_args); });

  auto update_args = std::make_shared<UpdateArguments>();
  CLI::App* update = app.add_subcommand("update", "Change an instance's TTL, idle standby and labels");
  update->add_option("ID", update_args->target, "Instance id or name")->required();
  update->add_option("--ttl", update_args->ttl_s, "Seconds from now until forkd deletes it")
      ->check(CLI::PositiveNumber);
  update->add_flag("--no-ttl", update_args->no_ttl, "Never delete it");
  update
      ->add_option("--idle-standby", update_args->idle_standby_s,
                   "Seconds of an idle VMM after which forkd stands it by (0: never)")
      ->check(CLI::NonNegativeNumber);
  update->add_option("--label", update_args->labels, "Set a label key=value (repeat it for more)");
  update->add_option("--unlabel", update_args->unlabels, "Remove the label with this key (repeat it for more)");
  update->callback([options, exit_code, update_args] { *exit_code = RunUpdate(*options, *update_args); });

  auto removed = std::make_shared<std::vector<std::string>>();
  CLI::App* rm = app.add_subcommand("rm", "Delete instances (a running one is stopped first)");
  rm->add_option("ID", *removed, "Instance ids or names")->required();
  rm->callback([options, exit_code, removed] { *exit_code = RunRemove(*options, *removed); });

  AddLifecycleCommand(app, options, exit_code, "start", "Boot a stopped instance");
  AddLifecycleCommand(app, options, exit_code, "stop", "Stop a running instance");
  AddLifecycleCommand(app, options, exit_code, "standby", "Pause, snapshot and stop a running instance");
  auto restored = std::make_shared<std::string>();
  auto snapshot = std::make_shared<std::string>();
  CLI::App* restore = app.add_subcommand(
      "restore", "Restore a standby instance from its snapshot, or roll it back to one of its snapshots");
  restore->add_option("ID", *restored, "Instance id or name")->required();
  restore->add_option("--snapshot", *snapshot,
                      "Roll back to this snapshot of the instance (s-...): what runs is stopped, its guest data "
                      "replaced by the snapshot's, and it is brought to the state the snapshot was taken in");
  restore->callback([options, exit_code, restored, snapshot] {
    const json body = snapshot->empty() ? json::object() : json{{"snapshot", *snapshot}};
    *exit_code = RunRequest(
        *options, [&](const ApiClient& client) { return client.Post(InstancePath(*restored, "/restore"), body); },
        InstanceSummary);
  });
}

}  // namespace fe::engine::forkctl
