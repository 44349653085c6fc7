#include "bench/datasets.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "base/unique_fd.h"
#include "bench/interrupt.h"

namespace fe::bench {
namespace {

constexpr uint64_t kMiB = 1024 * 1024;
constexpr uint64_t kGiB = 1024 * kMiB;
constexpr uint64_t kChunkBytes = 4 * kMiB;

// xorshift64*: fast and, unlike std::shuffle or std::uniform_int_distribution, gives the same
// sequence with every standard library, so the datasets are identical everywhere.
class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed | 1) {}
  uint64_t Next() {
    state_ ^= state_ >> 12;
    state_ ^= state_ << 25;
    state_ ^= state_ >> 27;
    return state_ * 0x2545F4914F6CDD1DULL;
  }
  void Fill(std::vector<char>& buffer) {
    for (size_t i = 0; i + 8 <= buffer.size(); i += 8) {
      uint64_t word = Next();
      __builtin_memcpy(buffer.data() + i, &word, 8);
    }
  }

 private:
  uint64_t state_;
};

Result<UniqueFd> CreateFile(const std::string& path, mode_t mode) {
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode));
  if (!fd) return Status::FromErrno(errno, "create", path);
  return fd;
}

Status WriteAt(int fd, const std::vector<char>& bytes, uint64_t offset, const std::string& path) {
  size_t done = 0;
  while (done < bytes.size()) {
    ssize_t n = ::pwrite(fd, bytes.data() + done, bytes.size() - done, offset + done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Status::FromErrno(errno, "write", path);
    done += n;
  }
  return Status::Ok();
}

Status WriteWholeFile(const std::string& path, const std::string& text, mode_t mode) {
  Result<UniqueFd> fd = CreateFile(path, mode);
  FE_RETURN_IF_ERROR(fd.status());
  return WriteAt(fd->get(), std::vector<char>(text.begin(), text.end()), 0, path);
}

Status MakeDirectory(const std::string& path) {
  if (::mkdir(path.c_str(), 0755) != 0) return Status::FromErrno(errno, "mkdir", path);
  return Status::Ok();
}

Status WriteSparseDisk(const std::string& path, Rng& rng, const GuestShape& shape) {
  const uint64_t slots_total = shape.disk_bytes / kChunkBytes;
  const uint64_t data_chunks = std::min(slots_total, shape.disk_data_bytes / kChunkBytes);
  Result<UniqueFd> fd = CreateFile(path, 0600);
  FE_RETURN_IF_ERROR(fd.status());
  if (::ftruncate(fd->get(), static_cast<off_t>(shape.disk_bytes)) != 0) {
    return Status::FromErrno(errno, "ftruncate", path);
  }
  // A partial Fisher-Yates shuffle picks distinct, scattered chunk slots.
  std::vector<uint64_t> slots(slots_total);
  for (uint64_t i = 0; i < slots_total; ++i) slots[i] = i;
  std::vector<char> chunk(kChunkBytes);
  for (uint64_t i = 0; i < data_chunks; ++i) {
    std::swap(slots[i], slots[i + rng.Next() % (slots_total - i)]);
    rng.Fill(chunk);
    FE_RETURN_IF_ERROR(CheckInterrupted());
    FE_RETURN_IF_ERROR(WriteAt(fd->get(), chunk, slots[i] * kChunkBytes, path));
  }
  return Status::Ok();
}

Status WriteMemoryImage(const std::string& path, Rng& rng, uint64_t bytes) {
  Result<UniqueFd> fd = CreateFile(path, 0600);
  FE_RETURN_IF_ERROR(fd.status());
  std::vector<char> chunk(kChunkBytes);
  for (uint64_t offset = 0; offset < bytes; offset += kChunkBytes) {
    rng.Fill(chunk);
    FE_RETURN_IF_ERROR(CheckInterrupted());
    FE_RETURN_IF_ERROR(WriteAt(fd->get(), chunk, offset, path));
  }
  return Status::Ok();
}

// Shaped like cloud-hypervisor's snapshot config.json (VmConfig), with paths relative to the
// instance directory so a clone is self-contained.
std::string ConfigJson() {
  nlohmann::json config = {
      {"cpus", {{"boot_vcpus", 2}, {"max_vcpus", 2}, {"kvm_hyperv", false}, {"max_phys_bits", 46}}},
      {"memory",
       {{"size", 1 * kGiB},
        {"mergeable", false},
        {"hotplug_method", "Acpi"},
        {"shared", true},
        {"hugepages", false},
        {"thp", true},
        {"prefault", false}}},
      {"payload",
       {{"kernel", "/var/lib/forkengine/images/vmlinux-6.1"},
        {"cmdline", "console=ttyS0 root=/dev/vda1 rw quiet panic=1"}}},
      {"disks", nlohmann::json::array({{{"path", "disk.raw"},
                                        {"readonly", false},
                                        {"direct", false},
                                        {"num_queues", 2},
                                        {"queue_size", 128},
                                        {"id", "_disk0"},
                                        {"pci_segment", 0}}})},
      {"net", nlohmann::json::array({{{"tap", "fe-tap-3f2a"},
                                      {"ip", "192.168.249.1"},
                                      {"mask", "255.255.255.0"},
                                      {"mac", "52:54:00:3f:2a:01"},
                                      {"num_queues", 2},
                                      {"queue_size", 256},
                                      {"id", "_net1"}}})},
      {"rng", {{"src", "/dev/urandom"}, {"iommu", false}}},
      {"serial", {{"file", "serial.log"}, {"mode", "File"}, {"iommu", false}}},
      {"console", {{"file", nullptr}, {"mode", "Off"}, {"iommu", false}}},
      {"vsock", {{"cid", 3}, {"socket", "vsock.sock"}, {"id", "_vsock2"}}},
      {"iommu", false},
      {"watchdog", false},
      {"platform", {{"num_pci_segments", 1}, {"serial_number", "fe-3f2a9c"}}},
  };
  return config.dump(2) + "\n";
}

// Shaped like cloud-hypervisor's state.json: per-component snapshot sections with opaque state.
std::string StateJson(Rng& rng) {
  nlohmann::json vcpus = nlohmann::json::array();
  for (int id = 0; id < 2; ++id) {
    nlohmann::json regs;
    for (const char* name : {"rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rsp", "rbp", "r8", "r9", "r10", "r11", "r12",
                             "r13", "r14", "r15", "rip", "rflags"}) {
      regs[name] = fmt::format("0x{:016x}", rng.Next());
    }
    vcpus.push_back({{"id", fmt::format("{}", id)}, {"regs", regs}, {"mp_state", "Runnable"}});
  }
  nlohmann::json devices = nlohmann::json::object();
  for (const char* device : {"_disk0", "_net1", "_vsock2", "__rng", "__serial", "__ioapic"}) {
    std::string state;
    for (int i = 0; i < 24; ++i) state += fmt::format("{:016x}", rng.Next());
    devices[device] = {{"state", state}, {"activated", true}};
  }
  nlohmann::json snapshot = {
      {"snapshot_version", 1},
      {"snapshots",
       {{"cpu-manager", {{"vcpus", vcpus}}},
        {"memory-manager", {{"regions", {{{"start_addr", 0}, {"size", 1 * kGiB}, {"file", "memory.bin"}}}}}},
        {"device-manager", devices},
        {"vm", {{"clock", rng.Next() % 1000000000}, {"common_cpuid", "opaque"}}}}},
  };
  return snapshot.dump(2) + "\n";
}

std::string SerialLog() {
  std::string log;
  for (int line = 0; line < 60; ++line) {
    log += fmt::format("[    {:2}.{:06}] systemd[1]: Started unit-{}.service - forkengine guest unit.\n", line / 10,
                       line * 16661 % 1000000, line);
  }
  return log;
}

}  // namespace

Status GenerateGuestDir(const std::string& path) {
  FE_RETURN_IF_ERROR(MakeDirectory(path));
  return FillGuestDir(path);
}

Status FillGuestDir(const std::string& path, const GuestShape& shape) {
  Rng rng(0x6f726b656e67696eULL);
  FE_RETURN_IF_ERROR(WriteSparseDisk(path + "/disk.raw", rng, shape));
  FE_RETURN_IF_ERROR(WriteMemoryImage(path + "/memory.bin", rng, shape.memory_bytes));
  FE_RETURN_IF_ERROR(WriteWholeFile(path + "/config.json", ConfigJson(), 0644));
  FE_RETURN_IF_ERROR(WriteWholeFile(path + "/state.json", StateJson(rng), 0644));
  FE_RETURN_IF_ERROR(WriteWholeFile(path + "/vm.pid", "48213\n", 0644));
  FE_RETURN_IF_ERROR(WriteWholeFile(path + "/serial.log", SerialLog(), 0640));
  return WriteWholeFile(path + "/cmdline", "console=ttyS0 root=/dev/vda1 rw quiet panic=1\n", 0644);
}

Status GenerateSmallFiles(const std::string& path) {
  FE_RETURN_IF_ERROR(MakeDirectory(path));
  return FillSmallTree(path, 10000);
}

Status FillSmallTree(const std::string& path, int files) {
  Rng rng(0x736d616c6c66ULL);
  std::vector<char> block(4096);
  for (int directory = 0; directory * 100 < files; ++directory) {
    std::string directory_path = fmt::format("{}/d{:03}", path, directory);
    FE_RETURN_IF_ERROR(MakeDirectory(directory_path));
    FE_RETURN_IF_ERROR(CheckInterrupted());
    for (int file = 0; file < 100 && directory * 100 + file < files; ++file) {
      std::string file_path = fmt::format("{}/f{:03}", directory_path, file);
      Result<UniqueFd> fd = CreateFile(file_path, 0644);
      FE_RETURN_IF_ERROR(fd.status());
      rng.Fill(block);
      FE_RETURN_IF_ERROR(WriteAt(fd->get(), block, 0, file_path));
    }
  }
  return Status::Ok();
}

Status SyncFilesystem(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd) return Status::FromErrno(errno, "open", path);
  if (::syncfs(fd.get()) != 0) return Status::FromErrno(errno, "syncfs", path);
  return Status::Ok();
}

Result<std::vector<Dataset>> GenerateDatasets(const std::string& parent) {
  std::vector<Dataset> datasets = {
      {"guest-dir",
       "10 GiB sparse disk.raw (50 x 4 MiB data) + 1 GiB memory.bin + 5 small files",
       parent + "/guest-dir",
       {}},
      {"small-files", "10,000 files x 4 KiB in 100 directories", parent + "/small-files", {}},
  };
  FE_RETURN_IF_ERROR(MakeDirectory(parent));
  FE_RETURN_IF_ERROR(GenerateGuestDir(datasets[0].path));
  FE_RETURN_IF_ERROR(GenerateSmallFiles(datasets[1].path));
  FE_RETURN_IF_ERROR(SyncFilesystem(parent));
  for (Dataset& dataset : datasets) {
    Result<TreeListing> listing = ListTree(dataset.path);
    FE_RETURN_IF_ERROR(listing.status());
    dataset.listing = std::move(*listing);
  }
  return datasets;
}

}  // namespace fe::bench
