// `forkctl nodes`: the live nodes of the cluster the forkd it talks to is a node of (GET /v1/nodes).
#pragma once

#include <memory>

#include <CLI/CLI.hpp>

#include "engine/forkctl/command_support.h"

namespace fe::engine::forkctl {

void AddNodesCommand(CLI::App& app, std::shared_ptr<GlobalOptions> options, int* exit_code);

}  // namespace fe::engine::forkctl
