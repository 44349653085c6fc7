// `forkctl clone SRC DST [--backend auto|reflink|copy] [--io-engine ...] [--json]`
#pragma once

#include <CLI/CLI.hpp>

namespace fe::engine::forkctl {

// Registers the subcommand; it runs when parsed and sets *exit_code.
void AddCloneCommand(CLI::App& app, int* exit_code);

}  // namespace fe::engine::forkctl
