// The cloud-hypervisor plugin: PrepareFork rewrites the fork's VmConfig files (config_rewrite.h),
// Launch builds the command line, Connect drives the REST API (controller.h).
#include "hypervisor/cloud_hypervisor/cloud_hypervisor.h"

#include <arpa/inet.h>
#include <sys/stat.h>

#include <cctype>

#include "hypervisor/cloud_hypervisor/boot_arguments.h"
#include "hypervisor/cloud_hypervisor/config_rewrite.h"
#include "hypervisor/cloud_hypervisor/controller.h"
#include "hypervisor/cloud_hypervisor/instance_files.h"
#include "hypervisor/cloud_hypervisor/instance_manifest.h"
#include "hypervisor/cloud_hypervisor/path_fields.h"
#include "hypervisor/identity_handoff.h"
#include "base/confined_dir.h"

namespace fe::hypervisor::cloud_hypervisor {
namespace {

using namespace cloud_hypervisor;

bool IsMac(std::string_view mac) {
  if (mac.size() != 17) return false;
  for (size_t i = 0; i < mac.size(); ++i) {
    bool colon = i % 3 == 2;
    if (colon ? mac[i] != ':' : !std::isxdigit(static_cast<unsigned char>(mac[i]))) return false;
  }
  return true;
}

bool IsIpv4(const std::string& address) {
  in_addr parsed{};
  return ::inet_pton(AF_INET, address.c_str(), &parsed) == 1;
}

Status CheckSpec(const ForkSpec& spec) {
  auto invalid = [](const std::string& what) { return Status::InvalidArgument("cloud-hypervisor fork: " + what); };
  for (const std::string* dir : {&spec.source_dir, &spec.target_dir}) {
    if (dir->empty() || dir->front() != '/') return invalid("directory '" + *dir + "' is not absolute");
  }
  if (spec.source_dir == spec.target_dir) return invalid("source and target are both " + spec.source_dir);
  const NetworkIdentity& target = spec.target_identity;
  if (target.tap_device.empty() || target.tap_device.size() > 15) {
    return invalid("target TAP name '" + target.tap_device + "' must have 1 to 15 bytes");
  }
  if (!IsMac(target.mac)) return invalid("target MAC '" + target.mac + "' is not xx:xx:xx:xx:xx:xx");
  if (!target.ipv4.empty() && !IsIpv4(target.ipv4)) {
    return invalid("target IPv4 '" + target.ipv4 + "' is not a dotted quad");
  }
  if (!target.gateway.empty() && !IsIpv4(target.gateway)) {
    return invalid("target gateway '" + target.gateway + "' is not a dotted quad");
  }
  if (target.prefix_length < 0 || target.prefix_length > 32) {
    return invalid("target prefix length " + std::to_string(target.prefix_length) + " is not 0..32");
  }
  return Status::Ok();
}

struct RewrittenFile {
  std::string relative;
  Json config;
  std::string content;
};

Result<RewrittenFile> RewriteFile(const ConfinedDir& dir, const std::string& relative, const ConfigRewrite& rewrite) {
  Result<std::string> text = dir.ReadFile(relative);
  if (!text.ok()) return text.status();
  Result<Json> config = ParseObject(*text, relative);
  if (!config.ok()) return config.status();
  FE_RETURN_IF_ERROR(RewriteConfig(*config, rewrite, relative));
  std::string content = config->dump(2) + "\n";
  return RewrittenFile{relative, std::move(*config), std::move(content)};
}

// Every file operation of a fork goes through one open handle of the fork's directory, and configs
// are overwritten in place (the directory is the caller's fresh clone, discarded whole on failure):
// a fork is a handful of small files, and reopening the directory by path, a new inode and a rename
// for each of them cost more than the rewrite itself.
Result<PreparedFork> Prepare(const ForkSpec& spec) {
  FE_RETURN_IF_ERROR(CheckSpec(spec));
  FE_ASSIGN_OR_RETURN(ConfinedDir target, ConfinedDir::Open(spec.target_dir));
  Result<InstanceFiles> files = FindInstanceFiles(target);
  if (!files.ok()) return files.status();
  if (spec.from_snapshot && files->snapshot_configs.empty()) {
    std::string where = files->snapshot_dir.empty() ? std::string(kDefaultSnapshotDir) : files->snapshot_dir;
    return Status::NotFound(spec.target_dir + "/" + where + "/" + std::string(kSnapshotConfigName) +
                            ": no snapshot config to restore the fork from");
  }
  ConfigRewrite rewrite{snapshot::PathRewriter(spec.source_dir, spec.target_dir, spec.guarded_dirs),
                        spec.source_identity, spec.target_identity, false};
  // Every file is rewritten in memory first, so an error in any leaves all of them untouched.
  std::vector<RewrittenFile> rewritten;
  for (bool in_snapshot : {false, true}) {
    rewrite.keep_vsock_cid = in_snapshot;
    for (const std::string& relative : in_snapshot ? files->snapshot_configs : files->boot_configs) {
      Result<RewrittenFile> file = RewriteFile(target, relative, rewrite);
      if (!file.ok()) return file.status();
      rewritten.push_back(std::move(*file));
    }
  }
  PreparedFork prepared;
  for (const RewrittenFile& file : rewritten) {
    FE_RETURN_IF_ERROR(target.OverwriteFile(file.relative, file.content));
    prepared.rewritten_files.push_back(file.relative);
  }
  // The fork must not inherit the source's sockets, pid file or logs: the manifest says which they
  // are, or, for a directory without one, what its configs name.
  Result<snapshot::Manifest> manifest = files->manifest ? *files->manifest : DescribeInstance(spec.target_dir);
  if (!manifest.ok()) return manifest.status();
  FE_RETURN_IF_ERROR(snapshot::RemoveRuntimeFiles(target, *manifest));
  if (spec.from_snapshot) prepared.restore.snapshot_dir = spec.target_dir + "/" + files->snapshot_dir;
  prepared.restore.identity = spec.target_identity;
  // The guest agent is reached through the vsock socket of the config the fork runs from.
  const std::vector<std::string>& runs_from = spec.from_snapshot ? files->snapshot_configs : files->boot_configs;
  for (const RewrittenFile& file : rewritten) {
    if (runs_from.empty() || file.relative != runs_from.front()) continue;
    const auto vsock = file.config.find("vsock");
    if (vsock != file.config.end() && vsock->is_object() && vsock->contains("socket") &&
        (*vsock)["socket"].is_string()) {
      prepared.restore.identity_channel = {IdentityChannel::Kind::kHybridVsock, (*vsock)["socket"].get<std::string>(),
                                           kIdentityVsockPort};
    }
  }
  return prepared;
}

// Every path field of `config` that lies in `dir` must be reachable: each directory on its way that
// exists is a directory (a "logs" that is a file leaves the VM no place for its serial log).
Status CheckPathsReachable(const ConfinedDir& dir, Json& config, const std::string& file) {
  for (const PathField& path_field : PathFields()) {
    FE_RETURN_IF_ERROR(ForEachField(
        config, path_field.pattern, file,
        [&](Json& parent, const std::string& key, const std::string& field) -> Status {
          Result<std::string> value = StringAt(parent, key, file, field);
          if (!value.ok()) return value.status();
          if (!snapshot::IsBeneath(*value, dir.path())) return Status::Ok();
          const std::string relative = value->substr(dir.path().size() + 1);
          for (size_t slash = relative.find('/'); slash != std::string::npos; slash = relative.find('/', slash + 1)) {
            Result<std::optional<struct stat>> st = dir.Stat(relative.substr(0, slash));
            if (!st.ok() || !st->has_value()) return Status::Ok();  // made when the VM runs
            if (!S_ISDIR((*st)->st_mode)) {
              return FieldError(file, field,
                                "'" + *value + "': " + dir.PathOf(relative.substr(0, slash)) + " is not a directory",
                                ErrorCode::kInvalidContent);
            }
          }
          return Status::Ok();
        }));
  }
  return Status::Ok();
}

Status CheckDirectory(const std::string& dir, bool standby) {
  Result<InstanceFiles> files = FindInstanceFiles(dir);
  if (!files.ok()) return files.status();
  if (files->boot_configs.empty() && !standby) {
    return Status::NotFound(dir + ": no boot config (" + std::string(kBootConfigName) +
                            ", a cloud-hypervisor VmConfig) to boot from");
  }
  if (files->snapshot_configs.empty() && standby) {
    std::string where = files->snapshot_dir.empty() ? std::string(kDefaultSnapshotDir) : files->snapshot_dir;
    return Status::NotFound(dir + "/" + where + "/" + std::string(kSnapshotConfigName) +
                            ": no snapshot config to restore from");
  }
  FE_ASSIGN_OR_RETURN(ConfinedDir confined, ConfinedDir::Open(dir));
  for (const std::vector<std::string>* configs : {&files->boot_configs, &files->snapshot_configs}) {
    for (const std::string& relative : *configs) {
      Result<std::string> text = confined.ReadFile(relative);
      if (!text.ok()) return text.status();
      FE_ASSIGN_OR_RETURN(Json config, ParseObject(*text, dir + "/" + relative));
      FE_RETURN_IF_ERROR(CheckPathsReachable(confined, config, dir + "/" + relative));
    }
  }
  if (standby) {
    const std::string snapshot_dir =
        files->snapshot_dir.empty() ? std::string(kDefaultSnapshotDir) : files->snapshot_dir;
    for (std::string_view name : {kSnapshotStateName, kSnapshotMemoryName}) {
      const std::string relative = snapshot_dir + "/" + std::string(name);
      if (!IsRegularFileBeneath(dir, relative)) {
        return Status::NotFound(dir + "/" + relative + ": the snapshot has no such regular file");
      }
    }
  }
  return Status::Ok();
}

Result<std::vector<std::string>> BootArgumentsOf(const std::string& dir) {
  Result<InstanceFiles> files = FindInstanceFiles(dir);
  if (!files.ok()) return files.status();
  if (files->boot_configs.empty()) {
    return Status::NotFound(dir + ": no boot config (" + std::string(kBootConfigName) + ") to boot from");
  }
  const std::string& relative = files->boot_configs.front();
  Result<std::string> text = ReadFileBeneath(dir, relative);
  if (!text.ok()) return text.status();
  Result<Json> config = ParseObject(*text, relative);
  if (!config.ok()) return config.status();
  return BootArguments(*config, relative);
}

class CloudHypervisor final : public Plugin {
 public:
  std::string_view Kind() const override { return kKind; }

  PluginCapabilities Capabilities() const override {
    PluginCapabilities capabilities;
    capabilities.fork_stopped = true;
    capabilities.fork_standby = true;
    capabilities.snapshot_keeps_vsock_cid = true;
    capabilities.restore_needs_path_alias = false;
    return capabilities;
  }

  Status CheckGuestDirectory(const std::string& dir, bool standby) const override {
    return CheckDirectory(dir, standby).Annotate("not a cloud-hypervisor guest directory");
  }

  Result<PreparedFork> PrepareFork(const ForkSpec& spec) const override {
    Result<PreparedFork> prepared = Prepare(spec);
    if (!prepared.ok()) return prepared.status().Annotate("preparing cloud-hypervisor fork " + spec.target_dir);
    return prepared;
  }

  Result<std::string> SnapshotMemoryFile(const std::string& /*instance_dir*/) const override {
    return Status::Unsupported(
        "cloud-hypervisor copies a snapshot's memory into the VM's own at restore, so a fork cannot map its "
        "template's memory: fork with memory \"private\"");
  }

  Result<LaunchCommand> Launch(const std::string& instance_dir, LaunchMode mode,
                               const MemorySource& memory) const override {
    if (!memory.empty()) return SnapshotMemoryFile(instance_dir).status();
    LaunchCommand command;
    command.api_socket = ApiSocketPath(instance_dir);
    command.argv = {std::string(kBinary), "--api-socket", command.api_socket};
    command.install_hint = kInstallHint;
    if (mode == LaunchMode::kRestore) return command;
    Result<std::vector<std::string>> arguments = BootArgumentsOf(instance_dir);
    if (!arguments.ok()) return arguments.status().Annotate("cloud-hypervisor boot of " + instance_dir);
    command.argv.insert(command.argv.end(), arguments->begin(), arguments->end());
    return command;
  }

  Result<std::unique_ptr<VmController>> Connect(const std::string& api_socket,
                                                std::chrono::milliseconds timeout) const override {
    return ConnectController(api_socket, timeout);
  }
};

}  // namespace

const Plugin& CloudHypervisorPlugin() {
  static const CloudHypervisor plugin;
  return plugin;
}

}  // namespace fe::hypervisor::cloud_hypervisor
