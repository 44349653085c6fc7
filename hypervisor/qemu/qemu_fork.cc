#include "hypervisor/qemu/qemu_fork.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstdio>
#include <random>
#include <set>

#include "base/confined_dir.h"
#include "hypervisor/identity_handoff.h"
#include "hypervisor/qemu/qemu_controller.h"
#include "snapshot/guest_directory.h"
#include "snapshot/path_rewrite.h"

namespace fe::hypervisor::qemu {
namespace {

// Where a snapshot is when no manifest names its directory (engine/lifecycle.cc's standby convention).
constexpr std::string_view kDefaultSnapshotDir = "snapshot";

bool IsAbsoluteDir(const std::string& path) { return !path.empty() && path[0] == '/'; }

std::string WithoutTrailingSlash(std::string path) {
  while (path.size() > 1 && path.back() == '/') path.pop_back();
  return path;
}

std::string BaseName(const std::string& path) {
  size_t slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

class ForkRewriter {
 public:
  ForkRewriter(const ForkSpec& spec, std::string_view origin)
      : origin_(origin),
        to_target_(spec.source_dir, spec.target_dir, spec.guarded_dirs),
        in_target_(spec.target_dir, spec.target_dir) {}

  Status Error(ErrorCode code, const std::string& field, const std::string& what) const {
    return Status(code, std::string(origin_) + ": field '" + field + "': " + what);
  }
  // PathRewriter::Check of a path field.
  Status Check(const std::string& field, const std::string& path) const {
    Status checked = to_target_.Check(path);
    return checked.ok() ? checked : Error(checked.code(), field, checked.message());
  }

  // A path of the VM's data: beneath the source -> beneath the target; anything else unchanged.
  std::string Data(const std::string& path) const {
    if (path.empty() || in_target_.Rewrite(path)) return path;
    return to_target_.RewriteOrKeep(path);
  }
  bool Moved(const std::string& path) const { return to_target_.Rewrite(path) || in_target_.Rewrite(path); }

  // A runtime file of the QEMU process: always in the target directory.
  std::string Runtime(const std::string& path) const {
    if (in_target_.Rewrite(path)) return path;
    if (std::optional<std::string> moved = to_target_.Rewrite(path)) return *moved;
    return to_target_.target_dir() + "/" + BaseName(path);
  }

 private:
  std::string_view origin_;
  snapshot::PathRewriter to_target_;
  snapshot::PathRewriter in_target_;
};

Status CheckSpec(const ForkSpec& spec) {
  if (!IsAbsoluteDir(spec.source_dir) || !IsAbsoluteDir(spec.target_dir)) {
    return Status::InvalidArgument("qemu fork: source and target directories must be absolute (\"" + spec.source_dir +
                                   "\", \"" + spec.target_dir + "\")");
  }
  if (WithoutTrailingSlash(spec.source_dir) == WithoutTrailingSlash(spec.target_dir)) {
    return Status::InvalidArgument("qemu fork: source and target are the same directory " + spec.source_dir);
  }
  return Status::Ok();
}

}  // namespace

std::string NewGuid() {
  std::random_device random;
  unsigned char bytes[16];
  for (size_t i = 0; i < sizeof bytes; i += 4) {
    uint32_t word = random();
    for (size_t j = 0; j < 4; ++j) bytes[i + j] = static_cast<unsigned char>(word >> (8 * j));
  }
  bytes[6] = static_cast<unsigned char>((bytes[6] & 0x0f) | 0x40);  // version 4
  bytes[8] = static_cast<unsigned char>((bytes[8] & 0x3f) | 0x80);  // RFC 4122 variant
  char text[37];
  std::snprintf(text, sizeof text, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", bytes[0],
                bytes[1], bytes[2], bytes[3], bytes[4], bytes[5], bytes[6], bytes[7], bytes[8], bytes[9], bytes[10],
                bytes[11], bytes[12], bytes[13], bytes[14], bytes[15]);
  return text;
}

Result<Config> RewriteConfigForFork(const Config& source, const ForkSpec& spec, std::string_view origin,
                                    const std::string& new_vmgenid) {
  FE_RETURN_IF_ERROR(CheckSpec(spec));
  const ForkRewriter rewrite(spec, origin);
  const NetworkIdentity& from = spec.source_identity;
  const NetworkIdentity& to = spec.target_identity;
  Config fork = source;

  FE_RETURN_IF_ERROR(rewrite.Check("kernel", source.kernel));
  FE_RETURN_IF_ERROR(rewrite.Check("initrd", source.initrd));
  FE_RETURN_IF_ERROR(rewrite.Check("memory_file", source.memory_file));
  FE_RETURN_IF_ERROR(rewrite.Check("qmp_socket", source.qmp_socket));
  for (size_t i = 0; i < source.drives.size(); ++i) {
    FE_RETURN_IF_ERROR(rewrite.Check("drives[" + std::to_string(i) + "].file", source.drives[i].file));
  }
  for (size_t i = 0; i < source.chardevs.size(); ++i) {
    FE_RETURN_IF_ERROR(rewrite.Check("chardevs[" + std::to_string(i) + "].path", source.chardevs[i].path));
  }
  fork.kernel = rewrite.Data(source.kernel);
  fork.initrd = rewrite.Data(source.initrd);
  if (!source.memory_file.empty() && !rewrite.Moved(source.memory_file)) {
    return rewrite.Error(ErrorCode::kInvalidArgument, "memory_file",
                         "guest RAM file " + source.memory_file + " is outside the source directory " +
                             spec.source_dir + ": the fork and the source would share their RAM");
  }
  fork.memory_file = rewrite.Data(source.memory_file);
  for (size_t i = 0; i < fork.drives.size(); ++i) {
    Drive& drive = fork.drives[i];
    if (!rewrite.Moved(drive.file) && !drive.read_only) {
      return rewrite.Error(ErrorCode::kInvalidArgument, "drives[" + std::to_string(i) + "].file",
                           "writable drive " + drive.file + " is outside the source directory " + spec.source_dir +
                               ": the fork and the source would write one disk");
    }
    drive.file = rewrite.Data(drive.file);
  }

  std::set<std::string> runtime_paths;
  auto relocate = [&](std::string& path, const std::string& field) {
    path = rewrite.Runtime(path);
    if (!runtime_paths.insert(path).second) {
      return rewrite.Error(ErrorCode::kInvalidArgument, field, "moves to " + path + ", which another field uses too");
    }
    return Status::Ok();
  };
  FE_RETURN_IF_ERROR(relocate(fork.qmp_socket, "qmp_socket"));
  for (size_t i = 0; i < fork.chardevs.size(); ++i) {
    FE_RETURN_IF_ERROR(relocate(fork.chardevs[i].path, "chardevs[" + std::to_string(i) + "].path"));
  }

  if (fork.nics.size() > 1) {
    return rewrite.Error(
        ErrorCode::kUnsupported, "nics",
        "qemu fork: " + std::to_string(fork.nics.size()) + " NICs, but an instance has one network identity");
  }
  if (!fork.nics.empty()) {
    Nic& nic = fork.nics[0];
    if (to.tap_device.empty() || to.tap_device.size() > 15) {
      return rewrite.Error(ErrorCode::kInvalidArgument, "nics[0].ifname",
                           "the fork's TAP device \"" + to.tap_device + "\" must be 1 to 15 bytes");
    }
    if (to.tap_device == from.tap_device && !spec.keeps_identity) {
      return rewrite.Error(ErrorCode::kInvalidArgument, "nics[0].ifname",
                           "the fork's TAP device " + to.tap_device + " is the source's");
    }
    if (to.mac.empty() || (to.mac == from.mac && !spec.keeps_identity)) {
      return rewrite.Error(ErrorCode::kInvalidArgument, "nics[0].mac",
                           "the fork needs a MAC of its own (got \"" + to.mac + "\")");
    }
    nic.ifname = to.tap_device;
    nic.mac = to.mac;
  }
  if (fork.vsock) {
    if (to.vsock_cid < 3 || (to.vsock_cid == from.vsock_cid && !spec.keeps_identity)) {
      return rewrite.Error(ErrorCode::kInvalidArgument, "vsock.guest_cid",
                           "the fork needs a vsock CID of its own, at least 3 (got " + std::to_string(to.vsock_cid) +
                               ", the source has " + std::to_string(from.vsock_cid) + ")");
    }
    fork.vsock->guest_cid = to.vsock_cid;
  }
  if (!fork.vmgenid.empty() && fork.vmgenid != "auto") fork.vmgenid = new_vmgenid;

  // Re-checks the socket path lengths and the MAC/GUID forms through a serialise/parse round trip.
  Result<Config> checked = ParseConfig(SerializeConfig(fork), origin);
  if (!checked.ok()) return checked.status().Annotate("qemu fork");
  return fork;
}

Status CheckGuestDirectory(const std::string& dir, bool standby) {
  FE_RETURN_IF_ERROR(ReadConfig(dir).status());
  if (!standby) return Status::Ok();
  Result<snapshot::Manifest> manifest = snapshot::ReadManifest(dir);
  if (!manifest.ok() && manifest.status().code() != ErrorCode::kNotFound) return manifest.status();
  const std::string snapshot_dir =
      manifest.ok() && !manifest->snapshot_dir.empty() ? manifest->snapshot_dir : std::string(kDefaultSnapshotDir);
  FE_RETURN_IF_ERROR(ReadFileBeneath(dir, snapshot_dir + "/" + kSnapshotInfoFile).status());
  if (!IsRegularFileBeneath(dir, snapshot_dir + "/" + kStateFile)) {
    return Status::NotFound(dir + "/" + snapshot_dir + "/" + kStateFile + ": the snapshot has no such regular file");
  }
  return Status::Ok();
}

Result<MemoryFile> RunningMemoryFile(const std::string& dir) {
  Result<Config> config = ReadConfig(dir);
  if (!config.ok()) return config.status();
  const std::string origin = dir + "/" + kConfigFile;
  if (config->memory_file.empty()) {
    return Status::Unsupported(origin + " has no memory_file: guest RAM is anonymous");
  }
  if (!snapshot::PathRewriter(dir, dir).Rewrite(config->memory_file)) {
    return Status::InvalidArgument(origin + ": field 'memory_file': " + config->memory_file + " is not in " + dir);
  }
  return MemoryFile{config->memory_file, config->memory_mib << 20};
}

Result<std::string> SnapshotMemoryFile(const std::string& dir) {
  Result<MemoryFile> memory_file = RunningMemoryFile(dir);
  if (!memory_file.ok() && memory_file.status().code() == ErrorCode::kUnsupported) {
    return Status::Unsupported(memory_file.status().message() +
                               " and saved inside the snapshot, so forks cannot map it (give the VM a memory_file "
                               "to share its memory)");
  }
  if (!memory_file.ok()) return memory_file.status();
  Result<snapshot::Manifest> manifest = snapshot::ReadManifest(dir);
  if (!manifest.ok() && manifest.status().code() != ErrorCode::kNotFound) return manifest.status();
  const std::string snapshot_dir =
      manifest.ok() && !manifest->snapshot_dir.empty() ? manifest->snapshot_dir : std::string(kDefaultSnapshotDir);
  // Resolved beneath `dir` first: the manifest is the guest directory's, not trusted.
  if (!IsRegularFileBeneath(dir, snapshot_dir + "/" + kSnapshotInfoFile)) {
    return Status::NotFound(dir + "/" + snapshot_dir + "/" + kSnapshotInfoFile + ": no snapshot description");
  }
  Result<SnapshotInfo> info = ReadSnapshotInfo(dir + "/" + snapshot_dir);
  if (!info.ok()) return info.status();
  if (!info->ignore_shared_memory) {
    return Status::Unsupported(dir + "/" + snapshot_dir +
                               " holds guest RAM in its migration stream (the VM ran "
                               "without sharing its memory_file), so forks cannot map it: restore and stand it by "
                               "again to leave RAM in " +
                               memory_file->path);
  }
  return memory_file->path;
}

Result<PreparedFork> PrepareFork(const ForkSpec& spec) {
  FE_RETURN_IF_ERROR(CheckSpec(spec));
  Result<Config> source = ReadConfig(spec.target_dir);
  if (!source.ok()) return source.status().Annotate("qemu fork");
  const std::string origin = spec.target_dir + "/" + kConfigFile;
  Result<Config> fork = RewriteConfigForFork(*source, spec, origin, NewGuid());
  if (!fork.ok()) return fork.status();

  PreparedFork prepared;
  prepared.restore.identity = spec.target_identity;
  prepared.restore.needs_source_path_alias = false;
  if (spec.from_snapshot) {
    Result<snapshot::Manifest> manifest = snapshot::ReadManifest(spec.target_dir);
    // No manifest (a guest directory imported without one, then put in standby): the snapshot is in
    // the conventional directory, where the engine's standby writes it.
    if (!manifest.ok() && manifest.status().code() == ErrorCode::kNotFound) {
      manifest = snapshot::Manifest{"qemu", std::string(kDefaultSnapshotDir), {}};
    }
    if (!manifest.ok()) return manifest.status().Annotate("qemu fork from a snapshot");
    if (!manifest->hypervisor.empty() && manifest->hypervisor != "qemu") {
      return Status::InvalidArgument("qemu fork: " + spec.target_dir + "/manifest.json says hypervisor \"" +
                                     manifest->hypervisor + "\"");
    }
    if (manifest->snapshot_dir.empty()) {
      return Status::NotFound("qemu fork from a snapshot: " + spec.target_dir +
                              "/manifest.json names no snapshot directory");
    }
    prepared.restore.snapshot_dir = spec.target_dir + "/" + manifest->snapshot_dir;
    if (!IsRegularFileBeneath(spec.target_dir, manifest->snapshot_dir + "/" + kStateFile)) {
      return Status::NotFound("qemu fork from a snapshot: " + prepared.restore.snapshot_dir + "/" + kStateFile +
                              " is not a regular file in the fork's directory");
    }
  }

  // The identity agent's virtio-serial port, on the fork's own (rewritten) socket.
  for (const Chardev& chardev : fork->chardevs) {
    if (chardev.virtio_port != kIdentitySerialPortName || chardev.backend != "socket") continue;
    prepared.restore.identity_channel.kind = IdentityChannel::Kind::kVirtioSerialSocket;
    prepared.restore.identity_channel.path = chardev.path;
  }

  FE_RETURN_IF_ERROR(WriteConfig(spec.target_dir, *fork));
  prepared.rewritten_files.push_back(kConfigFile);
  return prepared;
}

}  // namespace fe::hypervisor::qemu
