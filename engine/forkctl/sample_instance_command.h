// `forkctl sample-instance DIR [--disk-size 10G] [--memory-size 256M] [--vcpus 2] [--kernel PATH]`:
// writes a sample Cloud Hypervisor standby instance (sample_instance.h) to import with
// `forkctl create NAME --hypervisor cloud-hypervisor --import DIR`. Local; no forkd.
#pragma once

#include <memory>

#include <CLI/CLI.hpp>

#include "engine/forkctl/command_support.h"

namespace fe::engine::forkctl {

void AddSampleInstanceCommand(CLI::App& app, std::shared_ptr<GlobalOptions> options, int* exit_code);

}  // namespace fe::engine::forkctl
