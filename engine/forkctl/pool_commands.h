// forkctl's pool commands over forkd's /v1/pools routes, and the renderings of their replies:
//
//   forkctl pool create NAME --template T [--member-state Standby|Running] --min N --max N
//   forkctl pool ls                          NAME TEMPLATE MEMBERS MIN MAX READY REFILLING HITS MISSES VCPUS THROTTLED
//   forkctl pool show NAME                   one "key: value" line per field
//   forkctl pool acquire NAME [--name NEW] [--no-wait]
//   forkctl pool rm NAME
//
// The renderings are pure functions of the JSON; missing or mistyped fields render as "-".
#pragma once

#include <memory>
#include <string>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "engine/forkctl/command_support.h"

namespace fe::engine::forkctl {

void AddPoolCommands(CLI::App& app, std::shared_ptr<GlobalOptions> options, int* exit_code);

// A GET /v1/pools reply as a table, one row per pool, then "cpu budget: U of B vCPUs in use".
std::string PoolsTable(const nlohmann::json& reply);

// One pool as "key: value" lines.
std::string PoolDetails(const nlohmann::json& pool);

// An acquire reply: "acquired NAME (ID): STATE, hit|miss (forked on demand), X.XXX ms in forkd".
std::string AcquireSummary(const nlohmann::json& reply);

// "/v1/pools/<name, encoded>" + suffix.
std::string PoolPath(const std::string& name, const std::string& suffix = "");

}  // namespace fe::engine::forkctl
