// Create: a new instance, empty or imported from an existing guest directory.
//
// An import is a fork from a directory outside the engine: the directory is cloned into the new
// volume (copy-on-write where the backend's filesystem allows; the source is never written), and the
// plugin's PrepareFork rewrites the clone's configs so every path points into the volume rather than
// the imported directory, and the instance gets its own network identity (the source identity is
// unknown, so the plugin's rule for "the only NIC" applies).
//
// Steps, undone in reverse on failure: reserve the name -> intent metadata (Creating) -> volume ->
// lease -> PrepareFork -> final metadata.
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <cerrno>

#include <spdlog/spdlog.h>

#include "engine/engine.h"
#include "base/reverter.h"
#include "snapshot/guest_directory.h"
#include "storage/tree/tree_cloner.h"

namespace fe::engine {
namespace {

Status ValidateCreate(const CreateRequest& request) {
  FE_RETURN_IF_ERROR(ValidateInstanceName(request.name));
  if (request.vcpus < 1) return Status::InvalidArgument("vcpus must be at least 1 (got " + std::to_string(request.vcpus) + ")");
  if (!request.import_dir.empty() && request.import_dir.front() != '/') {
    return Status::InvalidArgument("import_dir '" + request.import_dir + "' is not an absolute path");
  }
  if (request.state && *request.state != InstanceState::kStopped && *request.state != InstanceState::kStandby) {
    return Status::InvalidArgument("a new instance is Stopped or Standby, not " + std::string(InstanceStateName(*request.state)) +
                   " (start it afterwards)");
  }
  for (const AttachedVolume& volume : request.attached_volumes) {
    if (volume.path.empty() || volume.path.front() != '/') {
      return Status::InvalidArgument("attached volume '" + volume.path + "' is not an absolute path");
    }
  }
  return Status::Ok();
}

bool IsNonEmptyDirectory(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) return false;
  return st.st_nlink > 2 || st.st_size > 0;
}

// The imported directory holds a snapshot: its manifest's snapshot_dir (or, without a manifest, the
// conventional "snapshot") is a directory with something in it.
bool HoldsSnapshot(const std::string& dir) {
  Result<snapshot::Manifest> manifest = snapshot::ReadManifest(dir);
  if (manifest.ok()) return !manifest->snapshot_dir.empty() && IsNonEmptyDirectory(dir + "/" + manifest->snapshot_dir);
  return IsNonEmptyDirectory(dir + "/snapshot");
}

// Clones the directory `source` into the existing empty volume directory `target`.
Status ImportInto(const std::string& source, const std::string& target) {
  size_t slash = source.find_last_of('/');
  std::string parent = slash == 0 ? "/" : source.substr(0, slash);
  std::string name = source.substr(slash + 1);
  int parent_fd = ::open(parent.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (parent_fd < 0) return Status::FromErrno(errno, "open", parent);
  UniqueFd parent_owner(parent_fd);
  int target_fd = ::open(target.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
  if (target_fd < 0) return Status::FromErrno(errno, "open", target);
  UniqueFd target_owner(target_fd);
  Result<storage::CloneReport> report = storage::CloneContents(parent_fd, name, target_fd, storage::CloneOptions{});
  if (!report.ok()) return report.status();
  spdlog::info("import {} -> {}: {} files, {} bytes, {}", source, target, report->files, report->logical_bytes,
               report->mechanism);
  return Status::Ok();
}

}  // namespace

Result<Instance> Engine::Create(const CreateRequest& request) {
  FE_RETURN_IF_ERROR(ValidateCreate(request));
  Result<const hypervisor::Plugin*> plugin = PluginFor(request.hypervisor);
  if (!plugin.ok()) return plugin.status();
  std::string import_dir;
  if (!request.import_dir.empty()) {
    char* resolved = ::realpath(request.import_dir.c_str(), nullptr);
    if (resolved == nullptr) return Status::FromErrno(errno, "import directory", request.import_dir);
    import_dir = resolved;
    ::free(resolved);
  }
  InstanceState state = request.state ? *request.state
                        : (!import_dir.empty() && HoldsSnapshot(import_dir)) ? InstanceState::kStandby
                                                                              : InstanceState::kStopped;
  hypervisor::PluginCapabilities capabilities = (*plugin)->Capabilities();
  if (!import_dir.empty() && !(state == InstanceState::kStandby ? capabilities.fork_standby : capabilities.fork_stopped)) {
    return Status::Unsupported("hypervisor '" + request.hypervisor + "' cannot import a " +
                                               std::string(InstanceStateName(state)) + " guest directory");
  }

  Instance instance;
  instance.id = NewInstanceId();
  instance.name = request.name;
  instance.hypervisor = request.hypervisor;
  instance.state = InstanceState::kCreating;
  instance.storage_backend = std::string(backend_->Name());
  instance.volume = instance.id;
  instance.created_at = instance.updated_at = NowRfc3339();
  instance.vcpus = request.vcpus;
  instance.attached_volumes = request.attached_volumes;
  auto failed = [&](std::string_view step, const Status& status) {
    return status.Annotate("create '" + request.name + "': " + std::string(step));
  };

  Reverter reverter;
  {
    std::lock_guard lock(mutex_);
    if (names_.count(request.name) != 0) {
      return Status::AlreadyExists("instance name '" + request.name + "' is taken");
    }
    names_.emplace(request.name, instance.id);
  }
  reverter.Add("release name " + request.name, [this, name = request.name, id = instance.id] {
    ReleaseNames({{name, id}});
    return Status::Ok();
  });
  if (Status written = store_.Write(instance); !written.ok()) return failed("metadata", written);
  reverter.Add("remove metadata of " + instance.id, [this, id = instance.id] { return store_.Remove(id); });

  if (Status created = backend_->Create(instance.volume); !created.ok()) return failed("volume", created);
  reverter.Add("remove volume " + instance.volume, [this, volume = instance.volume] { return backend_->Remove(volume); });
  std::string guest_dir = backend_->Path(instance.volume);
  if (!import_dir.empty()) {
    if (Status imported = ImportInto(import_dir, guest_dir); !imported.ok()) return failed("import", imported);
  }

  Result<hypervisor::NetworkIdentity> identity = network_->Allocate(instance.id);
  if (!identity.ok()) return failed("network", identity.status());
  reverter.Add("release lease of " + instance.id, [this, id = instance.id] { return network_->Release(id); });
  instance.identity = *identity;

  if (!import_dir.empty()) {
    hypervisor::ForkSpec spec{import_dir, guest_dir, {}, instance.identity, state == InstanceState::kStandby};
    Result<hypervisor::PreparedFork> prepared = (*plugin)->PrepareFork(spec);
    if (!prepared.ok()) return failed("rewrite", prepared.status());
    // The guest of an imported snapshot keeps whatever identity it was saved with (unknown here): it
    // is handed the instance's own at its next restore only if it is forked first (see fork.cc).
    instance.identity_channel = prepared->restore.identity_channel;
  }

  instance.state = state;
  auto entry = std::make_shared<Entry>();
  if (Status committed = Commit(entry, instance); !committed.ok()) return failed("metadata", committed);
  instance = Read(entry);
  {
    std::lock_guard lock(mutex_);
    entries_.emplace(instance.id, entry);
  }
  reverter.Commit();
  spdlog::info("created instance {} ('{}', {}, {}){}", instance.id, instance.name, instance.hypervisor,
               InstanceStateName(instance.state), import_dir.empty() ? "" : " from " + import_dir);
  return instance;
}

}  // namespace fe::engine
