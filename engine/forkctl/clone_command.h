// `forkctl clone SRC DST [--backend auto|btrfs|reflink|copy] [--io-engine ...] [--json]`
#pragma once

#include <memory>

#include <CLI/CLI.hpp>

#include "engine/forkctl/command_support.h"

namespace fe::engine::forkctl {

// Registers the subcommand; it runs when parsed and sets *exit_code.
void AddCloneCommand(CLI::App& app, std::shared_ptr<GlobalOptions> options, int* exit_code);

}  // namespace fe::engine::forkctl
