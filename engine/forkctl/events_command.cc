#include "engine/forkctl/events_command.h"

#include <fmt/format.h>

#include <iostream>
#include <set>

#include "engine/forkctl/json_fields.h"
#include "engine/forkctl/table.h"

namespace fe::engine::forkctl {
namespace {

using nlohmann::json;

// "2026-12-05T23:39:36.879Z" -> "23:39:36.879".
std::string TimeOfDay(const std::string& time) {
  const size_t t = time.find('T');
  if (t == std::string::npos) return time;
  std::string clock = time.substr(t + 1);
  if (!clock.empty() && clock.back() == 'Z') clock.pop_back();
  return clock;
}

std::string Named(const json& event) { return fmt::format("{} ({})", Text(event, "name"), Text(event, "instance")); }

// key=value for the fields an event type has no wording for.
std::string Fields(const json& event) {
  static const std::set<std::string> kShown{"seq", "time", "type"};
  std::string out;
  for (const auto& [key, value] : event.items()) {
    if (kShown.count(key)) continue;
    out += fmt::format("{}{}={}", out.empty() ? "" : " ", key,
                       value.is_string() ? value.get<std::string>() : value.dump());
  }
  return out;
}

std::string ForkDone(const json& fork) {
  const json& phases = Field(fork, "phases");
  auto ms = [&phases](const char* key) { return FormatMillis(Integer(phases, key)); };
  return fmt::format("{} ({}) {} in {} ms: clone {} ms, rewrite {} ms, metadata {} ms, restore {} ms ({})",
                     Text(fork, "name"), Text(fork, "instance"), Text(fork, "state"), ms("total_us"), ms("clone_us"),
                     ms("rewrite_us"), ms("metadata_us"), ms("restore_us"), Text(fork, "mechanism"));
}

std::string Describe(const json& event) {
  const std::string type = Text(event, "type");
  if (type == "instance.created") {
    const std::string parent = Text(event, "parent_id");
    return fmt::format("{} {}{}", Named(event), Text(event, "state"), parent == "-" ? "" : ", forked from " + parent);
  }
  if (type == "instance.state_changed") {
    return fmt::format("{} {} -> {}", Named(event), Text(event, "from"), Text(event, "to"));
  }
  if (type == "instance.deleted") return Named(event);
  if (type == "fork.started") {
    const int64_t count = Integer(event, "count");
    return fmt::format("'{}' of {}{}", Text(event, "name"), Text(event, "source"),
                       count > 1 ? fmt::format(" ({} forks)", count) : "");
  }
  if (type == "fork.finished") {
    std::string out;
    for (const json& fork : Elements(Field(event, "forks"))) out += (out.empty() ? "" : "; ") + ForkDone(fork);
    return out;
  }
  if (type == "fork.failed") {
    return fmt::format("'{}' of {}: {} ({})", Text(event, "name"), Text(event, "source"), Text(event, "message"),
                       Text(event, "code"));
  }
  if (type == "events.lost") {
    return fmt::format("events after {} are no longer kept (next: {}): list again to catch up", Text(event, "after"),
                       Text(event, "first_kept"));
  }
  return Fields(event);
}

}  // namespace

std::string EventLine(const json& event) {
  return fmt::format("{:>6} {}  {:<22} {}\n", Text(event, "seq"), TimeOfDay(Text(event, "time")), Text(event, "type"),
                     Describe(event));
}

void AddEventsCommand(CLI::App& app, std::shared_ptr<GlobalOptions> options, int* exit_code) {
  struct Arguments {
    int64_t since = -1;
    int64_t count = 0;
  };
  auto args = std::make_shared<Arguments>();
  CLI::App* events = app.add_subcommand("events", "Watch what forkd does as it happens (GET /v1/events)");
  events->add_option("--since", args->since, "Resume after this sequence number (default: from now on)")
      ->check(CLI::NonNegativeNumber);
  events->add_option("--count", args->count, "Stop after this many events (default: never)")
      ->check(CLI::PositiveNumber);
  events->callback([options, exit_code, args] {
    const std::string path = args->since >= 0 ? "/v1/events?since=" + std::to_string(args->since) : "/v1/events";
    int64_t seen = 0;
    Status streamed = ApiClient(options->socket).Stream(path, [&](const json& event) {
      std::cout << (options->json ? event.dump() + "\n" : EventLine(event)) << std::flush;
      return args->count == 0 || ++seen < args->count;
    });
    *exit_code = streamed.ok() ? 0 : PrintError(streamed);
  });
}

}  // namespace fe::engine::forkctl
