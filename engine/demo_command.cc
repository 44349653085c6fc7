#include "engine/demo_command.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <iostream>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "base/unique_fd.h"
#include "storage/backend_selection.h"
#include "storage/loop_filesystem.h"
#include "storage/reflink_probe.h"

namespace fe::cli {
namespace {

constexpr uint64_t kMiB = 1ull << 20;
constexpr uint64_t kGiB = 1ull << 30;

struct DemoArguments {
  std::string data_dir = "/var/lib/forkengine";
  int clones = 5;
  bool keep = false;
};

Status WriteFile(const std::string& path, const std::string& content) {
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644));
  if (!fd) return Status::FromErrno(errno, "create", path);
  if (::write(fd.get(), content.data(), content.size()) != static_cast<ssize_t>(content.size())) {
    return Status::FromErrno(errno, "write", path);
  }
  return Status::Ok();
}

// Writes `chunks` blocks of pseudo-random data at scattered offsets of a sparse file of `size`.
Status WriteSparseImage(const std::string& path, uint64_t size, uint64_t chunk, int chunks) {
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600));
  if (!fd) return Status::FromErrno(errno, "create", path);
  if (::ftruncate(fd.get(), static_cast<off_t>(size)) != 0) return Status::FromErrno(errno, "truncate", path);
  std::mt19937_64 random(42);
  std::vector<uint64_t> buffer(chunk / sizeof(uint64_t));
  for (int i = 0; i < chunks; ++i) {
    for (uint64_t& word : buffer) word = random();
    uint64_t offset = (size / static_cast<uint64_t>(chunks)) * static_cast<uint64_t>(i);
    if (::pwrite(fd.get(), buffer.data(), chunk, static_cast<off_t>(offset)) != static_cast<ssize_t>(chunk)) {
      return Status::FromErrno(errno, "write", path);
    }
  }
  return Status::Ok();
}

// A guest directory as a standby VM leaves it: disk, memory, snapshot config and state, and the
// runtime files a fork must not carry over (an API socket).
Status MakeSampleGuest(const std::string& dir) {
  FE_RETURN_IF_ERROR(WriteSparseImage(dir + "/disk.raw", 4 * kGiB, 4 * kMiB, 16));
  FE_RETURN_IF_ERROR(WriteSparseImage(dir + "/memory.bin", 256 * kMiB, 4 * kMiB, 64));
  FE_RETURN_IF_ERROR(WriteFile(dir + "/config.json", R"({
  "cpus": {"boot_vcpus": 2, "max_vcpus": 2},
  "memory": {"size": 268435456, "shared": true},
  "payload": {"kernel": "/var/lib/forkengine/images/vmlinux", "cmdline": "console=ttyS0 root=/dev/vda"},
  "disks": [{"path": "/var/lib/forkengine/instances/template/disk.raw"}],
  "net": [{"tap": "fe-tap0", "mac": "52:54:00:12:34:56", "ip": "10.100.0.2", "mask": "255.255.255.0"}],
  "serial": {"mode": "File", "file": "/var/lib/forkengine/instances/template/serial.log"}
}
)"));
  FE_RETURN_IF_ERROR(WriteFile(dir + "/state.json", R"({"devices": [], "vm_state": "Paused"})" "\n"));
  FE_RETURN_IF_ERROR(WriteFile(dir + "/serial.log", "[    0.000000] Linux version 6.1.0\n"));
  UniqueFd sock(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::string socket_path = dir + "/api.sock";
  if (socket_path.size() < sizeof(address.sun_path)) {
    socket_path.copy(address.sun_path, socket_path.size());
    if (::bind(sock.get(), reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0) {
      return Status::FromErrno(errno, "bind", socket_path);
    }
  }
  return Status::Ok();
}

std::string HumanBytes(uint64_t bytes) {
  if (bytes >= kGiB) return fmt::format("{:.2f} GiB", static_cast<double>(bytes) / kGiB);
  return fmt::format("{:.1f} MiB", static_cast<double>(bytes) / kMiB);
}

int RunDemo(const DemoArguments& args) {
  auto fail = [](const Status& status) {
    std::cerr << "forkctl demo: " << status.message() << "\n";
    return 1;
  };
  if (::mkdir(args.data_dir.c_str(), 0711) != 0 && errno != EEXIST) {
    return fail(Status::FromErrno(errno, "create data directory", args.data_dir));
  }
  Result<storage::FilesystemProbe> probe = storage::ProbeFilesystem(args.data_dir);
  if (!probe.ok()) return fail(probe.status());
  std::cout << fmt::format("data directory {}: {}\n", args.data_dir, probe->reason);

  std::string root = args.data_dir + "/instances";
  std::optional<storage::LoopFilesystem> pool;
  std::string why_not;
  if (!probe->reflink && storage::LoopFilesystem::Available(&why_not)) {
    storage::LoopFilesystemOptions options;
    options.image_path = args.data_dir + "/pool.img";
    options.size_bytes = 32 * kGiB;
    options.mount_point = args.data_dir + "/pool";
    options.keep_image = true;
    Result<storage::LoopFilesystem> opened = storage::LoopFilesystem::Open(options);
    if (!opened.ok()) return fail(opened.status());
    pool.emplace(std::move(*opened));
    root = options.mount_point + "/instances";
    std::cout << fmt::format("default pool: loop-backed XFS {} (sparse {}) on {} at {}\n", options.image_path,
                             HumanBytes(options.size_bytes), pool->device(), pool->mount_point());
  } else if (!probe->reflink) {
    std::cout << "no reflink and no loop pool (" << why_not << "): falling back to the sparse copy\n";
  }

  Result<std::unique_ptr<storage::Backend>> opened = storage::OpenBackend(root, storage::BackendChoice::kAuto);
  if (!opened.ok()) return fail(opened.status());
  std::unique_ptr<storage::Backend> backend = std::move(*opened);
  storage::Backend& volumes = *backend;
  std::cout << fmt::format("backend: {} ({})\n", volumes.Name(), volumes.SelectionReason());

  const std::string template_volume = "template";
  Result<std::vector<std::string>> existing = volumes.List();
  if (!existing.ok()) return fail(existing.status());
  for (const std::string& volume : *existing) {
    if (volume.rfind("demo-fork-", 0) == 0) (void)volumes.Remove(volume);  // leftovers of --keep
  }
  if (std::find(existing->begin(), existing->end(), template_volume) == existing->end()) {
    Status created = volumes.Create(template_volume);
    if (!created.ok()) return fail(created);
    Status made = MakeSampleGuest(volumes.Path(template_volume));
    if (!made.ok()) {
      (void)volumes.Remove(template_volume);
      return fail(made);
    }
    ::sync();
  }
  Result<storage::VolumeUsage> template_usage = volumes.Usage(template_volume);
  if (!template_usage.ok()) return fail(template_usage.status());
  std::cout << fmt::format("template guest {}: {} logical, {} allocated\n\n", volumes.Path(template_volume),
                           HumanBytes(template_usage->logical_bytes), HumanBytes(template_usage->allocated_bytes));

  std::cout << fmt::format("{:<14}{:>12}  {:<13}{:>12}{:>14}{:>10}\n", "clone", "latency", "mechanism",
                           "copied", "shared", "skipped");
  std::vector<std::string> made;
  std::vector<storage::SkippedEntry> skipped;
  for (int i = 1; i <= args.clones; ++i) {
    std::string name = fmt::format("demo-fork-{}", i);
    Result<storage::CloneReport> report = volumes.Clone(template_volume, name);
    if (!report.ok()) return fail(report.status());
    made.push_back(name);
    skipped = report->skipped;
    Result<storage::VolumeUsage> usage = volumes.Usage(name);
    if (!usage.ok()) return fail(usage.status());
    std::string shared = usage->shared_bytes ? HumanBytes(*usage->shared_bytes) : "n/a";
    std::cout << fmt::format("{:<14}{:>9.3f} ms  {:<13}{:>12}{:>14}{:>10}\n", name,
                             static_cast<double>(report->total.count()) / 1e6, report->mechanism,
                             HumanBytes(report->copied_bytes), shared, report->skipped.size());
  }
  for (const storage::SkippedEntry& entry : skipped) {
    std::cout << fmt::format("\nnot cloned: {} ({})", entry.path, entry.reason);
  }
  std::cout << "\n";
  if (!args.keep) {
    for (const std::string& name : made) {
      Status removed = volumes.Remove(name);
      if (!removed.ok()) return fail(removed);
    }
  } else {
    std::cout << "clones kept under " << volumes.Root() << "\n";
  }
  backend.reset();  // it holds the data root open, which would keep the pool busy
  if (pool) {
    Status closed = pool->Close();
    if (!closed.ok()) return fail(closed);
  }
  return 0;
}

}  // namespace

void AddDemoCommand(CLI::App& app, int* exit_code) {
  auto args = std::make_shared<DemoArguments>();
  CLI::App* command = app.add_subcommand("demo", "Clone a sample guest directory and report the cost");
  command->add_option("--data-dir", args->data_dir, "Data directory (the embedded default pool lives here)");
  command->add_option("--clones", args->clones, "How many clones to make")->check(CLI::Range(1, 1000));
  command->add_flag("--keep", args->keep, "Keep the clones");
  command->callback([args, exit_code] { *exit_code = RunDemo(*args); });
}

}  // namespace fe::cli
