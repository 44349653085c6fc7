// `forkctl storage probe PATH`: what the host offers for PATH and what `auto` would pick, and why.
#pragma once

#include <CLI/CLI.hpp>

namespace fe::cli {

void AddStorageCommand(CLI::App& app, int* exit_code);

}  // namespace fe::cli
