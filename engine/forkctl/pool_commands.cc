#include "engine/forkctl/pool_commands.h"

#include <fmt/format.h>

#include <iostream>
#include <vector>

#include "engine/forkctl/json_fields.h"
#include "engine/forkctl/table.h"

namespace fe::engine::forkctl {
namespace {

using nlohmann::json;

struct CreateArguments {
  std::string name;
  std::string template_instance;
  std::string member_state;
  std::string memory;
  int min_size = 0;
  int max_size = 1;
};

struct AcquireArguments {
  std::string pool;
  std::string name;
  bool no_wait = false;
  int64_t ttl_s = 0;
  int64_t idle_standby_s = 0;
};

void AddCreate(CLI::App& pool, const std::shared_ptr<GlobalOptions>& options, int* exit_code) {
  auto args = std::make_shared<CreateArguments>();
  CLI::App* create = pool.add_subcommand("create", "Create a pool of ready forks of a template instance");
  create->add_option("NAME", args->name, "Pool name (DNS label)")->required();
  create->add_option("--template", args->template_instance, "Template instance id or name (Stopped or Standby)")
      ->required();
  create->add_option("--member-state", args->member_state, "State of the ready members: Standby (default) or Running")
      ->check(CLI::IsMember({"Standby", "Running"}));
  create
      ->add_option("--memory", args->memory,
                   "Members' RAM: shared (mapping the template's snapshot memory) or private (default: shared "
                   "where the template can share it)")
      ->check(CLI::IsMember({"shared", "private"}));
  create->add_option("--min", args->min_size, "Members kept even when the CPU budget is needed elsewhere")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  create->add_option("--max", args->max_size, "Members the pool fills up to")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  create->callback([options, exit_code, args] {
    json body = {{"name", args->name},
                 {"template", args->template_instance},
                 {"min_size", args->min_size},
                 {"max_size", args->max_size}};
    if (!args->member_state.empty()) body["member_state"] = args->member_state;
    if (!args->memory.empty()) body["memory"] = args->memory;
    *exit_code = RunRequest(
        *options, [&](const ApiClient& client) { return client.Post("/v1/pools", body); },
        [](const json& pool) { return "created pool " + PoolDetails(pool); });
  });
}

void AddAcquire(CLI::App& pool, const std::shared_ptr<GlobalOptions>& options, int* exit_code) {
  auto args = std::make_shared<AcquireArguments>();
  CLI::App* acquire = pool.add_subcommand("acquire", "Take one ready member out of a pool as a normal instance");
  acquire->add_option("NAME", args->pool, "Pool name")->required();
  acquire->add_option("--name", args->name, "New name of the acquired instance (default: the member's)");
  acquire->add_flag("--no-wait", args->no_wait, "Fail (HTTP 503) when the pool is empty instead of forking on demand");
  acquire->add_option("--ttl", args->ttl_s, "Seconds until forkd deletes the acquired instance")
      ->check(CLI::PositiveNumber);
  acquire
      ->add_option("--idle-standby", args->idle_standby_s,
                   "Seconds of an idle VMM (almost no CPU) after which forkd stands the acquired instance by")
      ->check(CLI::PositiveNumber);
  acquire->callback([options, exit_code, args] {
    json body = json::object();
    if (!args->name.empty()) body["name"] = args->name;
    if (args->no_wait) body["no_wait"] = true;
    if (args->ttl_s > 0) body["ttl_s"] = args->ttl_s;
    if (args->idle_standby_s > 0) body["idle_standby_s"] = args->idle_standby_s;
    *exit_code = RunRequest(
        *options, [&](const ApiClient& client) { return client.Post(PoolPath(args->pool, "/acquire"), body); },
        AcquireSummary);
  });
}

// A byte count of the reply, "-" when it has none.
std::string BytesText(const json& object, const char* key) {
  const json& value = Field(object, key);
  return value.is_number_unsigned() ? FormatBytes(value.get<uint64_t>()) : "-";
}

}  // namespace

std::string PoolPath(const std::string& name, const std::string& suffix) {
  return "/v1/pools/" + EncodePathSegment(name) + suffix;
}

std::string PoolsTable(const json& reply) {
  Table table({{"NAME"},
               {"TEMPLATE"},
               {"MEMBERS"},
               {"MIN", Table::Align::kRight},
               {"MAX", Table::Align::kRight},
               {"READY", Table::Align::kRight},
               {"REFILLING", Table::Align::kRight},
               {"HITS", Table::Align::kRight},
               {"MISSES", Table::Align::kRight},
               {"VCPUS", Table::Align::kRight},
               {"THROTTLED"}});
  const json& pools = Field(reply, "pools");
  if (pools.is_array()) {
    for (const json& pool : pools) {
      table.AddRow({Text(pool, "name"), Text(pool, "template"), Text(pool, "member_state"), Text(pool, "min_size"),
                    Text(pool, "max_size"), Text(pool, "ready"), Text(pool, "refilling"), Text(pool, "hits"),
                    Text(pool, "misses"), Text(pool, "vcpus_per_member"), Text(pool, "throttled")});
    }
  }
  return table.Render() + fmt::format("cpu budget: {} of {} vCPUs in use\nmemory budget: {} of {} in use\n",
                                      Text(reply, "cpu_used_vcpus"), Text(reply, "cpu_budget_vcpus"),
                                      BytesText(reply, "memory_used_bytes"), BytesText(reply, "memory_budget_bytes"));
}

std::string PoolDetails(const json& pool) {
  std::string out = Text(pool, "name") + "\n";
  for (const char* key :
       {"template", "member_state", "memory", "min_size", "max_size", "vcpus_per_member", "ready", "refilling", "hits",
        "misses", "refills", "refill_failures", "last_refill_error", "throttled"}) {
    out += fmt::format("  {}: {}\n", key, Text(pool, key));
  }
  out += fmt::format("  memory_per_member: {}\n  memory_used: {}\n  memory_shared: {}\n",
                     BytesText(pool, "memory_per_member_bytes"), BytesText(pool, "memory_used_bytes"),
                     BytesText(pool, "memory_shared_bytes"));
  return out;
}

std::string AcquireSummary(const json& reply) {
  const json& instance = Field(reply, "instance");
  const json& hit = Field(reply, "hit");
  std::string source = !hit.is_boolean() ? "-" : hit.get<bool>() ? "hit" : "miss (forked on demand)";
  const json& latency = Field(reply, "latency_us");
  std::string millis = latency.is_number_integer() ? FormatMillis(latency.get<int64_t>()) + " ms in forkd" : "-";
  return fmt::format("acquired {} ({}): {}, {}, {}\n", Text(instance, "name"), Text(instance, "id"),
                     Text(instance, "state"), source, millis);
}

void AddPoolCommands(CLI::App& app, std::shared_ptr<GlobalOptions> options, int* exit_code) {
  CLI::App* pool = app.add_subcommand("pool", "Pools of ready forks of a template, refilled within a CPU budget");
  pool->require_subcommand(1);
  AddCreate(*pool, options, exit_code);

  CLI::App* ls = pool->add_subcommand("ls", "List pools and the CPU budget");
  ls->callback([options, exit_code] {
    *exit_code = RunRequest(
        *options, [](const ApiClient& client) { return client.Get("/v1/pools"); }, PoolsTable);
  });

  auto shown = std::make_shared<std::string>();
  CLI::App* show = pool->add_subcommand("show", "Show one pool");
  show->add_option("NAME", *shown, "Pool name")->required();
  show->callback([options, exit_code, shown] {
    *exit_code = RunRequest(
        *options, [&](const ApiClient& client) { return client.Get(PoolPath(*shown)); }, PoolDetails);
  });

  AddAcquire(*pool, options, exit_code);

  auto removed = std::make_shared<std::string>();
  CLI::App* rm = pool->add_subcommand("rm", "Delete a pool and its ready members (acquired instances stay)");
  rm->add_option("NAME", *removed, "Pool name")->required();
  rm->callback([options, exit_code, removed] {
    *exit_code = RunRequest(
        *options, [&](const ApiClient& client) { return client.Delete(PoolPath(*removed)); },
        [&](const json&) { return "removed pool " + *removed + "\n"; });
  });
}

}  // namespace fe::engine::forkctl
