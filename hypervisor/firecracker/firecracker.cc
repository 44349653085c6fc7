// The firecracker plugin: PrepareFork rewrites config.json and plans the snapshot restore
// (config_rewrite.h, snapshot_devices.h); Launch and Connect start and drive firecracker
// (controller.h, source_alias.h).
#include "hypervisor/firecracker/firecracker.h"
#include "snapshot/path_rewrite.h"

#include <sys/stat.h>

#include <cerrno>
#include <optional>

#include "hypervisor/firecracker/config_rewrite.h"
#include "hypervisor/firecracker/controller.h"
#include "hypervisor/firecracker/instance_files.h"
#include "hypervisor/firecracker/snapshot_devices.h"
#include "hypervisor/identity_handoff.h"
#include "base/confined_dir.h"

namespace fe::hypervisor::firecracker {
namespace {

using snapshot::IsBeneath;

Status CheckForkDirectories(const ForkSpec& spec) {
  for (const std::string* dir : {&spec.source_dir, &spec.target_dir}) {
    if (dir->size() < 2 || dir->front() != '/' || dir->back() == '/') {
      return Status::InvalidArgument("firecracker fork: '" + *dir +
                                     "' is not an absolute directory without a trailing '/'");
    }
  }
  if (spec.source_dir == spec.target_dir || IsBeneath(spec.target_dir, spec.source_dir) ||
      IsBeneath(spec.source_dir, spec.target_dir)) {
    return Status::InvalidArgument("firecracker fork: " + spec.source_dir + " and " + spec.target_dir +
                                   " must be distinct, non-nested directories");
  }
  return Status::Ok();
}

// A regular file beneath `dir` (no symlink on the way, none at the end).
Status RequireRegularFile(const std::string& dir, const std::string& relative, std::string_view what) {
  FE_ASSIGN_OR_RETURN(ConfinedDir confined, ConfinedDir::Open(dir));
  Result<std::optional<struct stat>> st = confined.Stat(relative);
  if (!st.ok()) return st.status().Annotate("the snapshot's " + std::string(what));
  if (!st->has_value())
    return Status::NotFound("the snapshot's " + std::string(what) + " " + confined.PathOf(relative) +
                            " does not exist");
  if (!S_ISREG((*st)->st_mode)) {
    return Status::InvalidContent("the snapshot's " + std::string(what) + " " + confined.PathOf(relative) +
                                  " is not a regular file");
  }
  return Status::Ok();
}

Status CheckDirectory(const std::string& dir, bool standby) {
  Result<InstanceFiles> files = FindInstanceFiles(dir);
  if (!files.ok()) return files.status();
  if (!files->boot_config.empty()) {
    Result<std::string> text = ReadFileBeneath(dir, files->boot_config);
    if (!text.ok()) return text.status();
    FE_RETURN_IF_ERROR(ParseObject(*text, dir + "/" + files->boot_config).status());
  } else if (!standby) {
    return Status::NotFound(dir + ": no " + std::string(kBootConfigName) +
                            " (Firecracker's --config-file) to boot from");
  }
  if (standby) {
    const std::string snapshot_relative = files->snapshot_dir + "/";
    FE_RETURN_IF_ERROR(RequireRegularFile(dir, snapshot_relative + std::string(kSnapshotStateName), "state file"));
    FE_RETURN_IF_ERROR(RequireRegularFile(dir, snapshot_relative + std::string(kSnapshotMemoryName), "memory file"));
  }
  return Status::Ok();
}

// The devices a fork restores with must not leave it holding anything of the source once the alias
// is gone (firecracker.h: drives are re-pointed, the vsock socket overridden, the TAP overridden).
Status CheckSnapshotDevices(const SnapshotDevices& devices, const std::string& embedded_dir,
                            const NetworkIdentity& target, bool keeps_identity, const std::string& file) {
  auto beneath = [&](const std::string& path) { return path == embedded_dir || IsBeneath(path, embedded_dir); };
  for (size_t i = 0; i < devices.drives.size(); ++i) {
    const DriveDevice& drive = devices.drives[i];
    const std::string field = "drives[" + std::to_string(i) + "]";
    if (!drive.socket.empty()) {
      return FieldError(file, field + ".socket", "a vhost-user drive: its backend serves the source's disk",
                        ErrorCode::kUnsupported);
    }
    if (!beneath(drive.path_on_host) && !drive.read_only) {
      return FieldError(file, field + ".path_on_host",
                        "'" + drive.path_on_host + "' is a writable disk outside " + embedded_dir +
                            ": the fork would write the source's disk",
                        ErrorCode::kUnsupported);
    }
  }
  for (size_t i = 0; i < devices.pmem.size(); ++i) {
    const PmemDevice& pmem = devices.pmem[i];
    const std::string field = "pmem[" + std::to_string(i) + "].path_on_host";
    if (beneath(pmem.path_on_host)) {
      return FieldError(file, field, "'" + pmem.path_on_host + "' cannot be re-pointed after a snapshot load",
                        ErrorCode::kUnsupported);
    }
    if (!pmem.read_only) {
      return FieldError(file, field, "'" + pmem.path_on_host + "' is a writable pmem file the source also writes",
                        ErrorCode::kUnsupported);
    }
  }
  if (devices.network_interfaces.size() > 1) {
    return FieldError(file, "network-interfaces[1]",
                      "a fork gets one network identity; this interface would keep the source's TAP '" +
                          devices.network_interfaces[1].host_dev_name + "'",
                      ErrorCode::kUnsupported);
  }
  if (!devices.network_interfaces.empty()) {
    if (target.tap_device.empty()) {
      return FieldError(file, "network-interfaces[0]", "the fork's network identity has no TAP device");
    }
    if (target.tap_device == devices.network_interfaces[0].host_dev_name && !keeps_identity) {
      return FieldError(file, "network-interfaces[0].host_dev_name",
                        "the fork's TAP '" + target.tap_device + "' is the source's");
    }
  }
  if (devices.vsock && !beneath(devices.vsock->uds_path)) {
    return FieldError(file, "vsock.uds_path",
                      "'" + devices.vsock->uds_path + "' is outside " + embedded_dir +
                          ": the fork's firecracker would bind the source's vsock socket",
                      ErrorCode::kUnsupported);
  }
  return Status::Ok();
}

class FirecrackerPluginImpl final : public Plugin {
 public:
  std::string_view Kind() const override { return kKind; }

  PluginCapabilities Capabilities() const override {
    PluginCapabilities capabilities;
    capabilities.fork_stopped = true;
    capabilities.fork_standby = true;
    capabilities.snapshot_keeps_vsock_cid = true;
    capabilities.restore_needs_path_alias = true;
    // firecracker maps a snapshot's memory file MAP_PRIVATE: a fork's load can name its template's.
    capabilities.shared_memory = true;
    return capabilities;
  }

  Status CheckGuestDirectory(const std::string& dir, bool standby) const override {
    return CheckDirectory(dir, standby).Annotate("not a firecracker guest directory");
  }

  Result<PreparedFork> PrepareFork(const ForkSpec& spec) const override {
    FE_RETURN_IF_ERROR(CheckForkDirectories(spec));
    Result<InstanceFiles> files = FindInstanceFiles(spec.target_dir);
    if (!files.ok()) return files.status();
    struct Write {
      std::string relative;
      std::string content;
    };
    std::vector<Write> writes;  // computed first, so nothing is written unless everything can be

    std::optional<Json> source_config;  // the clone's config before the rewrite: the source's
    if (!files->boot_config.empty()) {
      const std::string file = spec.target_dir + "/" + files->boot_config;
      Result<std::string> text = ReadFileBeneath(spec.target_dir, files->boot_config);
      if (!text.ok()) return text.status();
      Result<Json> config = ParseObject(*text, file);
      if (!config.ok()) return config.status();
      source_config = *config;
      const ConfigRewrite rewrite{snapshot::PathRewriter(spec.source_dir, spec.target_dir, spec.guarded_dirs),
                                  spec.target_identity};
      FE_RETURN_IF_ERROR(RewriteConfig(*config, rewrite, file));
      writes.push_back({files->boot_config, config->dump(2) + "\n"});
    } else if (!spec.from_snapshot) {
      return Status::NotFound("firecracker fork: " + spec.target_dir + " has no " + std::string(kBootConfigName) +
                              " (nor a manifest entry with role config)");
    }

    PreparedFork prepared;
    prepared.restore.identity = spec.target_identity;
    if (spec.from_snapshot) {
      const std::string snapshot_dir = spec.target_dir + "/" + files->snapshot_dir;
      const std::string snapshot_relative = files->snapshot_dir + "/";
      FE_RETURN_IF_ERROR(
          RequireRegularFile(spec.target_dir, snapshot_relative + std::string(kSnapshotStateName), "state file"));
      if (!spec.shared_memory) {
        FE_RETURN_IF_ERROR(
            RequireRegularFile(spec.target_dir, snapshot_relative + std::string(kSnapshotMemoryName), "memory file"));
      }
      const std::string devices_file = snapshot_dir + "/" + std::string(kSnapshotDevicesName);
      Json base = Json::object();
      std::optional<SnapshotDevices> devices;
      Result<std::string> text =
          ReadFileBeneath(spec.target_dir, snapshot_relative + std::string(kSnapshotDevicesName));
      if (text.ok()) {
        Result<Json> document = ParseObject(*text, devices_file);
        if (!document.ok()) return document.status();
        Result<SnapshotDevices> parsed = ParseSnapshotDevices(*document, devices_file);
        if (!parsed.ok()) return parsed.status();
        base = std::move(*document);
        devices = std::move(*parsed);
      } else if (text.status().code() != ErrorCode::kNotFound) {
        return text.status();
      } else if (source_config) {
        // A snapshot forkengine did not take: the config it was booted with describes it.
        Result<SnapshotDevices> parsed =
            ParseSnapshotDevices(*source_config, spec.target_dir + "/" + files->boot_config);
        if (!parsed.ok()) return parsed.status();
        devices = std::move(*parsed);
      } else {
        return Status::NotFound("firecracker fork: cannot tell which paths the snapshot state in " + snapshot_dir +
                                " embeds: it has no " + std::string(kSnapshotDevicesName) +
                                " and the instance has no " + std::string(kBootConfigName));
      }
      // The state embeds the paths of the directory it was taken in: the source's, or, when the source
      // is itself a fork not restored since, the directory that fork's alias started from.
      const std::string embedded_dir = devices->source_alias ? devices->source_alias->from : spec.source_dir;
      if (embedded_dir == spec.target_dir || IsBeneath(spec.target_dir, embedded_dir) ||
          IsBeneath(embedded_dir, spec.target_dir)) {
        return FieldError(devices_file, "source_alias.from",
                          "'" + embedded_dir + "' and the fork's " + spec.target_dir + " must be distinct, non-nested");
      }
      FE_RETURN_IF_ERROR(
          CheckSnapshotDevices(*devices, embedded_dir, spec.target_identity, spec.keeps_identity, devices_file));
      devices->source_alias = PathAlias{embedded_dir, spec.target_dir};
      writes.push_back({files->snapshot_dir + "/" + std::string(kSnapshotDevicesName),
                        EncodeSnapshotDevices(*devices, std::move(base))});
      prepared.restore.snapshot_dir = snapshot_dir;
      prepared.restore.needs_source_path_alias = true;
      // The restore's vsock_override moves the socket into the fork (controller.cc).
      if (devices->vsock && !devices->vsock->uds_path.empty()) {
        prepared.restore.identity_channel = {
            IdentityChannel::Kind::kHybridVsock,
            snapshot::PathRewriter(embedded_dir, spec.target_dir).RewriteOrKeep(devices->vsock->uds_path),
            kIdentityVsockPort};
      }
    } else if (!writes.empty()) {
      // A fresh boot: the rewritten config's vsock socket.
      Result<Json> config = ParseObject(writes.front().content, spec.target_dir + "/" + files->boot_config);
      if (!config.ok()) return config.status();
      const auto vsock = config->find("vsock");
      if (vsock != config->end() && vsock->is_object() && vsock->contains("uds_path") &&
          (*vsock)["uds_path"].is_string()) {
        prepared.restore.identity_channel = {IdentityChannel::Kind::kHybridVsock,
                                             (*vsock)["uds_path"].get<std::string>(), kIdentityVsockPort};
      }
    }

    for (const Write& write : writes) {
      FE_RETURN_IF_ERROR(
          ReplaceFileBeneath(spec.target_dir, write.relative, write.content).Annotate("firecracker fork"));
      prepared.rewritten_files.push_back(write.relative);
    }
    return prepared;
  }

  Result<std::string> SnapshotMemoryFile(const std::string& instance_dir) const override {
    Result<InstanceFiles> files = FindInstanceFiles(instance_dir);
    if (!files.ok()) return files.status();
    return instance_dir + "/" + files->snapshot_dir + "/" + std::string(kSnapshotMemoryName);
  }

  // The memory source matters to the load request only (controller.h).
  Result<LaunchCommand> Launch(const std::string& instance_dir, LaunchMode mode,
                               const MemorySource& /*memory*/) const override {
    Result<std::string> socket = ApiSocketPath(instance_dir);
    if (!socket.ok()) return socket.status();
    LaunchCommand command;
    command.api_socket = *socket;
    command.install_hint = kInstallHint;
    if (mode == LaunchMode::kBoot) {
      Result<InstanceFiles> files = FindInstanceFiles(instance_dir);
      if (!files.ok()) return files.status();
      if (files->boot_config.empty()) {
        return Status::NotFound("firecracker boot: " + instance_dir + " has no " + std::string(kBootConfigName));
      }
      command.argv = {std::string(kBinary), "--api-sock", *socket, "--config-file",
                      instance_dir + "/" + files->boot_config};
      return command;
    }
    // A mount namespace of its own, where a fork's source-path alias can live during the load without
    // the host or the source ever seeing it; slave, so host unmounts still reach it (source_alias.h).
    command.argv = {std::string(kUnshareBinary), "--mount",    "--propagation", "slave", "--",
                    std::string(kBinary),        "--api-sock", *socket};
    return command;
  }

  Result<std::unique_ptr<VmController>> Connect(const std::string& api_socket,
                                                std::chrono::milliseconds timeout) const override {
    return ConnectFirecracker(api_socket, timeout);
  }
};

}  // namespace

const Plugin& FirecrackerPlugin() {
  static const FirecrackerPluginImpl plugin;
  return plugin;
}

}  // namespace fe::hypervisor::firecracker
