// `forkctl events`: forkd's event stream (GET /v1/events) as it happens, one line per event, or the
// raw JSON lines with --json. --since resumes after a sequence number; --count stops after that many.
#pragma once

#include <memory>
#include <string>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "engine/forkctl/command_support.h"

namespace fe::engine::forkctl {

void AddEventsCommand(CLI::App& app, std::shared_ptr<GlobalOptions> options, int* exit_code);

// One event as a line: "   12 23:39:36.879  fork.finished  b (i-…) Stopped in 137.8 ms: clone 4.1 ms …"
// (time of day in UTC). An unknown type shows its fields as key=value.
std::string EventLine(const nlohmann::json& event);

}  // namespace fe::engine::forkctl
