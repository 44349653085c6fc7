// `forkctl storage`: forkd's storage backend and pool usage (GET /v1/storage).
// `forkctl storage probe PATH`: local, no forkd: what the host offers for PATH and what `auto` would
// pick, and why.
#pragma once

#include <memory>

#include <CLI/CLI.hpp>

#include "engine/forkctl/command_support.h"

namespace fe::engine::forkctl {

void AddStorageCommand(CLI::App& app, std::shared_ptr<GlobalOptions> options, int* exit_code);

}  // namespace fe::engine::forkctl
