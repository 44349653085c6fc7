// forkctl's instance commands over forkd: ls, show, create, rm, start, stop, standby, restore.
#pragma once

#include <memory>

#include <CLI/CLI.hpp>

#include "engine/forkctl/command_support.h"

namespace fe::engine::forkctl {

void AddInstanceCommands(CLI::App& app, std::shared_ptr<GlobalOptions> options, int* exit_code);

}  // namespace fe::engine::forkctl
