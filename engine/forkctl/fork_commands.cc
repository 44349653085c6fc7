#include "engine/forkctl/fork_commands.h"

#include <string>
#include <vector>

#include "engine/forkctl/instance_view.h"

namespace fe::engine::forkctl {
namespace {

using nlohmann::json;

struct ForkArguments {
  std::string source;
  std::string snapshot;  // --from-snapshot: fork this snapshot instead of an instance
  std::string name;
  bool from_running = false;
  std::string target_state;
  int count = 1;
  std::string memory;
  std::string source_pause;
  bool no_header = false;
  std::vector<std::string> labels;
  int64_t ttl_s = 0;
  int64_t idle_standby_s = 0;
};

Result<json> ForkBody(const ForkArguments& args) {
  json body = {{"name", args.name}};
  Result<json> labels = LabelsObject(args.labels);
  if (!labels.ok()) return labels.status();
  if (!labels->empty()) body["labels"] = *labels;
  if (args.ttl_s > 0) body["ttl_s"] = args.ttl_s;
  if (args.idle_standby_s > 0) body["idle_standby_s"] = args.idle_standby_s;
  if (args.from_running) body["from_running"] = true;
  if (!args.target_state.empty()) body["target_state"] = args.target_state;
  if (args.count != 1) body["count"] = args.count;
  if (!args.memory.empty()) body["memory"] = args.memory;
  if (!args.source_pause.empty()) body["source_pause"] = args.source_pause;
  return body;
}

}  // namespace

void AddForkCommands(CLI::App& app, std::shared_ptr<GlobalOptions> options, int* exit_code) {
  auto args = std::make_shared<ForkArguments>();
  CLI::App* fork = app.add_subcommand("fork", "Fork an instance: clone its guest data, give it a new identity");
  fork->add_option("SRC", args->source, "Source instance id or name (not with --from-snapshot)");
  fork->add_option("--from-snapshot", args->snapshot, "Fork this snapshot (s-...) instead of an instance");
  fork->add_option("--name", args->name, "Name of the fork (with --count N: NAME-1 .. NAME-N)")->required();
  fork->add_flag("--from-running", args->from_running,
                 "Allow a running source: it is put in standby for the clone and restored after");
  fork->add_option("--target-state", args->target_state, "Stopped, Standby or Running (default: the source's)");
  // The bounds are forkd's too; checking here gives a usage error before any request.
  fork->add_option("--count", args->count, "How many forks, made concurrently, all or nothing")
      ->check(CLI::Range(1, 64));
  fork->add_option("--memory", args->memory,
                   "shared: the forks map the source's snapshot memory copy-on-write (a Standby source; qemu with a "
                   "memory_file, firecracker); private (default): RAM of their own")
      ->check(CLI::IsMember({"shared", "private"}));
  fork->add_option("--source-pause", args->source_pause,
                   "With --from-running: short (default: the live path where guest RAM is a shared file, else standby "
                   "and restore) or background (qemu with anonymous RAM: its guest's filesystems frozen by its agent "
                   "for the clone and QEMU's capture, the VM stopped only for that capture, or paused where it "
                   "cannot be frozen; RAM saved while it runs, forks ready later)")
      ->check(CLI::IsMember({"short", "background"}));
  fork->add_option("--label", args->labels, "A label key=value laid over the source's (repeat it for more)");
  fork->add_option("--ttl", args->ttl_s, "Seconds until forkd deletes each fork")->check(CLI::PositiveNumber);
  fork->add_option("--idle-standby", args->idle_standby_s,
                   "Seconds of an idle VMM (almost no CPU) after which forkd stands a fork by")
      ->check(CLI::PositiveNumber);
  fork->add_flag("--no-header", args->no_header, "Print the table without its header line");
  fork->callback([options, exit_code, args] {
    *exit_code = RunRequest(
        *options,
        [&](const ApiClient& client) -> Result<json> {
          if (args->source.empty() == args->snapshot.empty()) {
            return Status::InvalidArgument("give either SRC (an instance) or --from-snapshot ID, not both");
          }
          Result<json> body = ForkBody(*args);
          if (!body.ok()) return body;
          const std::string path = args->snapshot.empty()
                                       ? InstancePath(args->source, "/fork")
                                       : "/v1/snapshots/" + EncodePathSegment(args->snapshot) + "/fork";
          return client.Post(path, *body);
        },
        [&](const json& reply) { return ForksTable(reply, !args->no_header); });
  });

  CLI::App* tree = app.add_subcommand("tree", "Show the fork tree of all instances");
  tree->callback([options, exit_code] {
    *exit_code = RunRequest(
        *options, [](const ApiClient& client) { return client.Get("/v1/instances"); },
        [](const json& reply) { return ForkTree(InstancesOf(reply)); });
  });
}

}  // namespace fe::engine::forkctl
