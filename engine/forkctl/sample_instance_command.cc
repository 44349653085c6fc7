#include "engine/forkctl/sample_instance_command.h"

#include <fmt/format.h>

#include <filesystem>
#include <iostream>

#include "engine/forkctl/sample_instance.h"
#include "engine/forkctl/table.h"

namespace fe::engine::forkctl {
namespace {

struct SampleArguments {
  std::string dir;
  std::string disk_size = "10G";
  std::string memory_size = "256M";
  int vcpus = 2;
  std::string kernel;
};

int RunSample(const GlobalOptions& global, const SampleArguments& args) {
  SampleInstanceOptions options;
  Result<uint64_t> disk = ParseByteSize(args.disk_size);
  Result<uint64_t> memory = ParseByteSize(args.memory_size);
  for (const Status* status : {&disk.status(), &memory.status()}) {
    if (!status->ok()) {
      std::cerr << "forkctl sample-instance: " << status->message() << "\n";
      return kExitUsage;
    }
  }
  options.disk_bytes = *disk;
  options.memory_bytes = *memory;
  options.vcpus = args.vcpus;
  options.kernel = args.kernel;
  std::error_code error;
  std::string dir = std::filesystem::absolute(args.dir, error).lexically_normal().string();
  if (error) return PrintError(Status::InvalidArgument(args.dir + ": " + error.message()));
  while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
  Result<SampleInstance> sample = WriteSampleInstance(dir, options);
  if (!sample.ok()) return PrintError(sample.status());
  if (global.json) {
    nlohmann::json out = {{"dir", sample->dir},
                          {"files", sample->files},
                          {"logical_bytes", sample->logical_bytes},
                          {"data_bytes", sample->data_bytes}};
    std::cout << out.dump(2) << "\n";
  } else {
    std::cout << fmt::format("sample cloud-hypervisor standby instance {}: {} files, {} logical, {} data\n",
                             sample->dir, sample->files.size(), FormatBytes(sample->logical_bytes),
                             FormatBytes(sample->data_bytes));
  }
  return 0;
}

}  // namespace

void AddSampleInstanceCommand(CLI::App& app, std::shared_ptr<GlobalOptions> options, int* exit_code) {
  auto args = std::make_shared<SampleArguments>();
  CLI::App* command =
      app.add_subcommand("sample-instance", "Write a sample Cloud Hypervisor standby instance directory");
  command->add_option("DIR", args->dir, "Directory to write (created; must be empty if it exists)")->required();
  command->add_option("--disk-size", args->disk_size, "Apparent size of the sparse disk image")->capture_default_str();
  command->add_option("--memory-size", args->memory_size, "Guest memory (the snapshot's memory file)")
      ->capture_default_str();
  command->add_option("--vcpus", args->vcpus, "vCPUs")->check(CLI::Range(1, 256))->capture_default_str();
  command->add_option("--kernel", args->kernel, "Kernel path for the configs (default: the running kernel's)");
  command->callback([options, exit_code, args] { *exit_code = RunSample(*options, *args); });
}

}  // namespace fe::engine::forkctl
