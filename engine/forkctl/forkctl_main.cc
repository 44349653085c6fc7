// forkctl: the forkengine command line. Most commands are requests to forkd over its Unix socket
// (engine/forkctl/); `clone`, `storage probe` and `sample-instance` work locally without it.
#include <signal.h>

#include <CLI/CLI.hpp>

#include "engine/forkctl/clone_command.h"
#include "engine/forkctl/command_support.h"
#include "engine/forkctl/completion.h"
#include "engine/forkctl/events_command.h"
#include "engine/forkctl/fork_commands.h"
#include "engine/forkctl/health_command.h"
#include "engine/forkctl/nodes_command.h"
#include "engine/forkctl/instance_commands.h"
#include "engine/forkctl/pool_commands.h"
#include "engine/forkctl/sample_instance_command.h"
#include "engine/forkctl/snapshot_commands.h"
#include "engine/forkctl/storage_command.h"

int main(int argc, char** argv) {
  // Debian's cpp-httplib sends without MSG_NOSIGNAL: a forkd that goes away mid-request must give an
  // error message, not a silent death by SIGPIPE.
  ::signal(SIGPIPE, SIG_IGN);
  CLI::App app{"forkctl: fork virtual machines by copying nothing"};
  app.require_subcommand(1);
  int exit_code = 0;
  auto options = fe::engine::forkctl::AddGlobalOptions(app);
  fe::engine::forkctl::AddInstanceCommands(app, options, &exit_code);
  fe::engine::forkctl::AddForkCommands(app, options, &exit_code);
  fe::engine::forkctl::AddSnapshotCommands(app, options, &exit_code);
  fe::engine::forkctl::AddPoolCommands(app, options, &exit_code);
  fe::engine::forkctl::AddStorageCommand(app, options, &exit_code);
  fe::engine::forkctl::AddHealthCommand(app, options, &exit_code);
  fe::engine::forkctl::AddNodesCommand(app, options, &exit_code);
  fe::engine::forkctl::AddEventsCommand(app, options, &exit_code);
  fe::engine::forkctl::AddSampleInstanceCommand(app, options, &exit_code);
  fe::engine::forkctl::AddCloneCommand(app, options, &exit_code);
  fe::engine::forkctl::AddCompletionAndVersionCommands(app);  // last: completion lists every command
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& error) {
    // --help and --version are "errors" with exit code 0; every other one is a usage error.
    int code = app.exit(error);
    return code == 0 ? 0 : fe::engine::forkctl::kExitUsage;
  }
  return exit_code;
}
