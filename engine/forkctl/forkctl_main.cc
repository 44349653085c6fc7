// forkctl: the forkengine command line. Most commands are requests to forkd over its Unix socket
// (engine/cli/); `clone`, `storage probe` and `sample-instance` work locally without it.
#include <CLI/CLI.hpp>

#include "engine/forkctl/clone_command.h"
#include "engine/forkctl/command_support.h"
#include "engine/forkctl/fork_commands.h"
#include "engine/forkctl/health_command.h"
#include "engine/forkctl/instance_commands.h"
#include "engine/forkctl/pool_commands.h"
#include "engine/forkctl/sample_instance_command.h"
#include "engine/forkctl/storage_command.h"

int main(int argc, char** argv) {
  CLI::App app{"forkctl: fork virtual machines by copying nothing"};
  app.require_subcommand(1);
  int exit_code = 0;
  auto options = fe::cli::AddGlobalOptions(app);
  fe::cli::AddInstanceCommands(app, options, &exit_code);
  fe::cli::AddForkCommands(app, options, &exit_code);
  fe::cli::AddPoolCommands(app, options, &exit_code);
  fe::cli::AddStorageCommand(app, options, &exit_code);
  fe::cli::AddHealthCommand(app, options, &exit_code);
  fe::cli::AddSampleInstanceCommand(app, options, &exit_code);
  fe::cli::AddCloneCommand(app, &exit_code);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& error) {
    // --help and --version are "errors" with exit code 0; every other one is a usage error.
    int code = app.exit(error);
    return code == 0 ? 0 : fe::cli::kExitUsage;
  }
  return exit_code;
}
