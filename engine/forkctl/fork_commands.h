// forkctl's fork commands over forkd: fork (one or a fan-out of N) and tree (the fork lineage).
#pragma once

#include <memory>

#include <CLI/CLI.hpp>

#include "engine/forkctl/command_support.h"

namespace fe::engine::forkctl {

void AddForkCommands(CLI::App& app, std::shared_ptr<GlobalOptions> options, int* exit_code);

}  // namespace fe::engine::forkctl
