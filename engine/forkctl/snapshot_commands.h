// forkctl's snapshot commands (issue #23): snapshot create|ls|rm over forkd's /v1/snapshots routes,
// and the snapshots' table. (fork --from-snapshot and restore --snapshot live with fork and restore.)
#pragma once

#include <memory>
#include <string>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "engine/forkctl/command_support.h"

namespace fe::engine::forkctl {

void AddSnapshotCommands(CLI::App& app, std::shared_ptr<GlobalOptions> options, int* exit_code);

// NAME ID INSTANCE TAKEN-IN STATE TAKEN-AT LABELS, one row per snapshot of GET /v1/snapshots.
std::string SnapshotsTable(const nlohmann::json& snapshots);
// "snapshot NAME (ID) of INSTANCE: STATE, paused P ms, took T ms (MECHANISM)" of a POST reply.
std::string SnapshotTakenSummary(const nlohmann::json& reply);

}  // namespace fe::engine::forkctl
