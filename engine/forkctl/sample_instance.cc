#include "engine/forkctl/sample_instance.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <random>

#include <nlohmann/json.hpp>

#include "base/unique_fd.h"
#include "hypervisor/cloud_hypervisor/instance_manifest.h"
#include "snapshot/guest_directory.h"

namespace fe::engine::forkctl {
namespace {

using Json = nlohmann::ordered_json;

constexpr uint64_t kKiB = 1024;
constexpr uint64_t kMiB = kKiB * 1024;
constexpr uint64_t kDiskChunks = 16;
constexpr uint64_t kPage = 4 * kKiB;

// The sample's own identity; importing and forking replace it with leased ones.
constexpr const char* kTap = "fe-sample0";
constexpr const char* kMac = "02:fe:5a:00:00:02";
constexpr const char* kHostIp = "192.168.249.1";
constexpr const char* kMask = "255.255.255.0";
constexpr int kVsockCid = 3;

std::string DefaultKernel() {
  utsname name{};
  if (::uname(&name) != 0) return "/boot/vmlinuz";
  return std::string("/boot/vmlinuz-") + name.release;
}

Status OpenOrCreateEmptyDir(const std::string& dir, UniqueFd* out) {
  if (dir.empty() || dir.front() != '/') {
    return Status::InvalidArgument("sample instance directory '" + dir + "' is not absolute");
  }
  bool created = ::mkdir(dir.c_str(), 0755) == 0;
  if (!created && errno != EEXIST) return Status::FromErrno(errno, "create directory", dir);
  UniqueFd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!fd) return Status::FromErrno(errno, "open directory", dir);
  if (!created) {
    int listing_fd = ::dup(fd.get());
    if (listing_fd < 0) return Status::FromErrno(errno, "dup", dir);
    DIR* listing = ::fdopendir(listing_fd);
    if (listing == nullptr) {
      int err = errno;
      ::close(listing_fd);
      return Status::FromErrno(err, "list", dir);
    }
    bool empty = true;
    while (dirent* entry = ::readdir(listing)) {
      if (std::strcmp(entry->d_name, ".") != 0 && std::strcmp(entry->d_name, "..") != 0) empty = false;
    }
    ::closedir(listing);
    if (!empty) return Status::AlreadyExists(dir + ": not empty; a sample instance needs an empty directory");
  }
  *out = std::move(fd);
  return Status::Ok();
}

class SampleWriter {
 public:
  SampleWriter(int dir_fd, std::string dir, SampleInstance* sample)
      : dir_fd_(dir_fd), dir_(std::move(dir)), sample_(sample) {}

  Status MakeDir(const std::string& relative) {
    if (::mkdirat(dir_fd_, relative.c_str(), 0755) != 0)
      return Status::FromErrno(errno, "create directory", Path(relative));
    return Status::Ok();
  }

  Status WriteText(const std::string& relative, const std::string& text) {
    UniqueFd fd;
    FE_RETURN_IF_ERROR(Create(relative, 0644, &fd));
    FE_RETURN_IF_ERROR(WriteAt(fd.get(), relative, text.data(), text.size(), 0));
    sample_->logical_bytes += text.size();
    sample_->data_bytes += text.size();
    return Status::Ok();
  }

  // A file of `size` bytes with `chunks` blocks of `chunk` pseudo-random bytes spread evenly over it;
  // the rest are holes. chunks * chunk == size writes it completely.
  Status WriteData(const std::string& relative, uint64_t size, uint64_t chunk, uint64_t chunks, uint64_t seed) {
    UniqueFd fd;
    FE_RETURN_IF_ERROR(Create(relative, 0600, &fd));
    if (::ftruncate(fd.get(), static_cast<off_t>(size)) != 0)
      return Status::FromErrno(errno, "truncate", Path(relative));
    std::mt19937_64 random(seed);
    std::vector<uint64_t> buffer(chunk / sizeof(uint64_t));
    for (uint64_t i = 0; i < chunks; ++i) {
      for (uint64_t& word : buffer) word = random();
      FE_RETURN_IF_ERROR(WriteAt(fd.get(), relative, buffer.data(), chunk, (size / chunks) * i));
    }
    if (::fsync(fd.get()) != 0) return Status::FromErrno(errno, "fsync", Path(relative));
    sample_->logical_bytes += size;
    sample_->data_bytes += chunk * chunks;
    return Status::Ok();
  }

 private:
  std::string Path(const std::string& relative) const { return dir_ + "/" + relative; }

  Status Create(const std::string& relative, mode_t mode, UniqueFd* fd) {
    *fd = UniqueFd(::openat(dir_fd_, relative.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode));
    if (!*fd) return Status::FromErrno(errno, "create", Path(relative));
    sample_->files.push_back(relative);
    return Status::Ok();
  }

  Status WriteAt(int fd, const std::string& relative, const void* data, uint64_t size, uint64_t offset) {
    const char* bytes = static_cast<const char*>(data);
    while (size > 0) {
      ssize_t written = ::pwrite(fd, bytes, size, static_cast<off_t>(offset));
      if (written < 0 && errno == EINTR) continue;
      if (written <= 0) return Status::FromErrno(written < 0 ? errno : EIO, "write", Path(relative));
      bytes += written;
      size -= static_cast<uint64_t>(written);
      offset += static_cast<uint64_t>(written);
    }
    return Status::Ok();
  }

  int dir_fd_;
  std::string dir_;
  SampleInstance* sample_;
};

// The boot config: only what a user writes for vm.create.
Json BootConfig(const std::string& dir, const SampleInstanceOptions& options, const std::string& kernel) {
  return Json{
      {"cpus", {{"boot_vcpus", options.vcpus}, {"max_vcpus", options.vcpus}}},
      {"memory", {{"size", options.memory_bytes}, {"shared", false}}},
      {"payload", {{"kernel", kernel}, {"cmdline", "console=ttyS0 root=/dev/vda1 rw"}}},
      {"disks", Json::array({{{"path", dir + "/disk.raw"}}})},
      {"net", Json::array({{{"tap", kTap}, {"ip", kHostIp}, {"mask", kMask}, {"mac", kMac}}})},
      {"rng", {{"src", "/dev/urandom"}}},
      {"serial", {{"mode", "File"}, {"file", dir + "/logs/serial.log"}}},
      {"console", {{"mode", "Off"}}},
      {"vsock", {{"cid", kVsockCid}, {"socket", dir + "/vsock.sock"}}},
  };
}

// The same VM as vm.snapshot serializes its VmConfig: defaults filled in, device ids assigned.
Json SnapshotConfig(const std::string& dir, const SampleInstanceOptions& options, const std::string& kernel) {
  return Json{
      {"cpus",
       {{"boot_vcpus", options.vcpus},
        {"max_vcpus", options.vcpus},
        {"kvm_hyperv", false},
        {"max_phys_bits", 46},
        {"nested", true}}},
      {"memory",
       {{"size", options.memory_bytes},
        {"mergeable", false},
        {"hotplug_method", "Acpi"},
        {"shared", false},
        {"hugepages", false},
        {"prefault", false},
        {"thp", true}}},
      {"payload", {{"kernel", kernel}, {"cmdline", "console=ttyS0 root=/dev/vda1 rw"}}},
      {"disks", Json::array({{{"id", "_disk0"},
                              {"pci_segment", 0},
                              {"path", dir + "/disk.raw"},
                              {"readonly", false},
                              {"direct", false},
                              {"num_queues", 1},
                              {"queue_size", 128},
                              {"vhost_user", false},
                              {"disable_io_uring", false},
                              {"disable_aio", false},
                              {"sparse", true},
                              {"image_type", "Raw"}}})},
      {"net", Json::array({{{"id", "_net1"},
                            {"pci_segment", 0},
                            {"tap", kTap},
                            {"ip", kHostIp},
                            {"mask", kMask},
                            {"mac", kMac},
                            {"mtu", 1500},
                            {"num_queues", 2},
                            {"queue_size", 256},
                            {"vhost_user", false},
                            {"vhost_mode", "Client"},
                            {"offload_tso", true},
                            {"offload_ufo", true},
                            {"offload_csum", true}}})},
      {"rng", {{"pci_segment", 0}, {"src", "/dev/urandom"}}},
      {"serial", {{"mode", "File"}, {"file", dir + "/logs/serial.log"}}},
      {"console", {{"mode", "Off"}, {"pci_segment", 0}}},
      {"vsock", {{"id", "_vsock2"}, {"pci_segment", 0}, {"cid", kVsockCid}, {"socket", dir + "/vsock.sock"}}},
      {"iommu", false},
      {"watchdog", false},
      {"platform", {{"num_pci_segments", 1}, {"iommu_address_width_bits", 64}}},
  };
}

// Device state in cloud-hypervisor's nesting (component id -> {snapshots, snapshot_data}). The
// plugin never reads it; a restore from this sample is not expected to work without a real guest.
Json SnapshotState(const std::string& dir, const SampleInstanceOptions& options) {
  auto node = [](Json snapshots, Json data) {
    return Json{{"snapshots", std::move(snapshots)}, {"snapshot_data", std::move(data)}};
  };
  Json vcpus = Json::object();
  for (int i = 0; i < options.vcpus; ++i) vcpus[std::to_string(i)] = node(Json::object(), {{"state", {{"id", i}}}});
  Json memory = {{"state",
                  {{"memory_ranges", {{"ranges", Json::array({{{"gpa", 0}, {"length", options.memory_bytes}}})}}},
                   {"guest_ram_mappings", Json::array()}}}};
  Json devices = {
      {"_disk0", node(Json::object(),
                      {{"state", {{"disk_path", dir + "/disk.raw"}, {"disk_nsectors", options.disk_bytes / 512}}}})},
      {"_net1", node(Json::object(), {{"state", {{"avail_features", 0}, {"acked_features", 0}}}})},
      {"_vsock2", node(Json::object(), {{"state", {{"cid", kVsockCid}}}})}};
  return node({{"cpu-manager", node(vcpus, nullptr)},
               {"memory-manager", node(Json::object(), memory)},
               {"device-manager", node(devices, nullptr)}},
              {{"state", {{"vm_state", "Paused"}}}});
}

}  // namespace

Result<SampleInstance> WriteSampleInstance(const std::string& dir, const SampleInstanceOptions& options) {
  if (options.disk_bytes < kMiB) return Status::InvalidArgument("sample disk must be at least 1 MiB");
  if (options.memory_bytes < kMiB || options.memory_bytes % kPage != 0) {
    return Status::InvalidArgument("sample memory must be at least 1 MiB and a multiple of 4 KiB");
  }
  if (options.vcpus < 1) return Status::InvalidArgument("sample needs at least one vCPU");
  UniqueFd dir_fd;
  FE_RETURN_IF_ERROR(OpenOrCreateEmptyDir(dir, &dir_fd));
  SampleInstance sample;
  sample.dir = dir;
  SampleWriter writer(dir_fd.get(), dir, &sample);
  const std::string kernel = options.kernel.empty() ? DefaultKernel() : options.kernel;

  // Disk: kDiskChunks blocks of up to 4 MiB (page-aligned) spread over the image.
  const uint64_t disk_chunk =
      std::max(kPage, std::min(4 * kMiB, options.disk_bytes / (kDiskChunks * 4)) / kPage * kPage);
  FE_RETURN_IF_ERROR(writer.WriteData("disk.raw", options.disk_bytes, disk_chunk, kDiskChunks, 1));
  FE_RETURN_IF_ERROR(writer.WriteText("config.json", BootConfig(dir, options, kernel).dump(2) + "\n"));
  FE_RETURN_IF_ERROR(writer.MakeDir("snapshot"));
  FE_RETURN_IF_ERROR(writer.WriteText("snapshot/config.json", SnapshotConfig(dir, options, kernel).dump(2) + "\n"));
  FE_RETURN_IF_ERROR(writer.WriteText("snapshot/state.json", SnapshotState(dir, options).dump() + "\n"));
  // Memory: written whole, as vm.snapshot does, in chunks of up to 4 MiB.
  uint64_t memory_chunk = std::min(4 * kMiB, options.memory_bytes);
  while (options.memory_bytes % memory_chunk != 0) memory_chunk -= kPage;
  FE_RETURN_IF_ERROR(writer.WriteData("snapshot/memory-ranges", options.memory_bytes, memory_chunk,
                                      options.memory_bytes / memory_chunk, 2));
  FE_RETURN_IF_ERROR(writer.MakeDir("logs"));
  FE_RETURN_IF_ERROR(writer.WriteText("logs/serial.log", "[    0.000000] Linux version (sample instance)\n"));

  Result<snapshot::Manifest> manifest = hypervisor::cloud_hypervisor::DescribeInstance(dir);
  if (!manifest.ok()) return manifest.status().Annotate("describing sample instance " + dir);
  FE_RETURN_IF_ERROR(snapshot::WriteManifest(dir, *manifest));
  sample.files.push_back("manifest.json");
  if (::fsync(dir_fd.get()) != 0) return Status::FromErrno(errno, "fsync", dir);
  return sample;
}

Result<uint64_t> ParseByteSize(std::string_view text) {
  auto invalid = [&text] {
    return Status::InvalidArgument("size '" + std::string(text) +
                                   "' is not a number with an optional K, M, G or T suffix");
  };
  size_t digits = 0;
  while (digits < text.size() && std::isdigit(static_cast<unsigned char>(text[digits]))) ++digits;
  if (digits == 0 || digits > 18) return invalid();
  uint64_t value = std::stoull(std::string(text.substr(0, digits)));
  std::string unit;
  for (char c : text.substr(digits)) unit += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (unit.size() > 1 && unit.back() == 'b') unit.pop_back();  // "10GB", "10GiB"
  if (unit.size() > 1 && unit.back() == 'i') unit.pop_back();
  int shift = unit == "" || unit == "b" ? 0
              : unit == "k"             ? 10
              : unit == "m"             ? 20
              : unit == "g"             ? 30
              : unit == "t"             ? 40
                                        : -1;
  if (shift < 0) return invalid();
  if (shift > 0 && value > (UINT64_MAX >> shift)) return invalid();
  return value << shift;
}

}  // namespace fe::engine::forkctl
