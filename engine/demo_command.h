// `forkctl demo`: the main job for now. Makes a sample guest directory on a copy-on-write data root
// (an embedded loop-backed XFS pool when the data directory has no reflink and we are root), clones
// it several times, and prints per-clone latency, the mechanism used and the space shared.
#pragma once

#include <CLI/CLI.hpp>

namespace fe::cli {

void AddDemoCommand(CLI::App& app, int* exit_code);

}  // namespace fe::cli
