// `forkctl completion bash|zsh` and `forkctl version`. The completion script is generated from
// forkctl's own command tree (CLI11's subcommands and options), so it cannot fall behind a new
// command: the shell offers, after the words typed so far, the subcommands and options of the
// deepest command they name. zsh runs the same function through its bashcompinit.
#pragma once

#include <string>
#include <string_view>

#include <CLI/CLI.hpp>

namespace fe::engine::forkctl {

// The completion script of `app` for `shell` ("bash" or "zsh"); empty for another shell.
std::string CompletionScript(const CLI::App& app, std::string_view shell);

// Registers `completion` and `version` on `app` (which must have every other command already).
void AddCompletionAndVersionCommands(CLI::App& app);

}  // namespace fe::engine::forkctl
