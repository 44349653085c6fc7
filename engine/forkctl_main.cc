// forkctl: the forkengine command line.
#include <CLI/CLI.hpp>

#include "engine/clone_command.h"
#include "engine/demo_command.h"
#include "engine/storage_command.h"

int main(int argc, char** argv) {
  CLI::App app{"forkctl: fork virtual machines by copying nothing"};
  app.require_subcommand(1);
  int exit_code = 0;
  fe::cli::AddCloneCommand(app, &exit_code);
  fe::cli::AddDemoCommand(app, &exit_code);
  fe::cli::AddStorageCommand(app, &exit_code);
  CLI11_PARSE(app, argc, argv);
  return exit_code;
}
