// `forkctl health`: is forkd up, and how many instances it holds (GET /v1/healthz). Exit 0 only
// when forkd answered "ok"; scripts wait for forkd with it.
#pragma once

#include <memory>

#include <CLI/CLI.hpp>

#include "engine/forkctl/command_support.h"

namespace fe::engine::forkctl {

void AddHealthCommand(CLI::App& app, std::shared_ptr<GlobalOptions> options, int* exit_code);

}  // namespace fe::engine::forkctl
