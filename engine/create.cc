// Create: a new instance, empty or imported from an existing guest directory.
//
// An import is a fork from a directory outside the engine: the directory is cloned into the new
// volume (copy-on-write where the backend's filesystem allows; the source is never written), and the
// plugin's PrepareFork rewrites the clone's configs so every path points into the volume rather than
// the imported directory, and the instance gets its own network identity (the source identity is
// unknown, so the plugin's rule for "the only NIC" applies).
//
// Steps, undone in reverse on failure: reserve the name (as a fork does, engine/fork_plan.h) -> intent
// metadata (Creating) -> volume (Backend::Import for an import) -> lease -> PrepareFork -> final metadata.
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <cerrno>

#include <spdlog/spdlog.h>

#include "base/confined_dir.h"
#include "base/reverter.h"
#include "engine/fork_plan.h"
#include "snapshot/guest_directory.h"
#include "snapshot/tree_check.h"

namespace fe::engine {
namespace {

Status ValidateCreate(const CreateRequest& request) {
  FE_RETURN_IF_ERROR(ValidateInstanceName(request.name));
  if (request.vcpus < 1 || request.vcpus > kMaxVcpus) {
    return Status::InvalidArgument("vcpus " + std::to_string(request.vcpus) + " is not 1.." +
                                   std::to_string(kMaxVcpus));
  }
  if (!request.import_dir.empty() && request.import_dir.front() != '/') {
    return Status::InvalidArgument("import_dir '" + request.import_dir + "' is not an absolute path");
  }
  if (request.state && *request.state != InstanceState::kStopped && *request.state != InstanceState::kStandby) {
    return Status::InvalidArgument("a new instance is Stopped or Standby, not " +
                                   std::string(InstanceStateName(*request.state)) + " (start it afterwards)");
  }
  if (request.as_template && request.import_dir.empty()) {
    return Status::InvalidArgument("a template is imported: give import_dir with \"template\": true");
  }
  if (request.replica &&
      (!request.as_template || request.replica->origin_dir.empty() || request.replica->origin_dir.front() != '/')) {
    return Status::InvalidArgument("a replica is a template from an absolute origin directory");
  }
  for (const AttachedVolume& volume : request.attached_volumes) {
    if (volume.path.empty() || volume.path.front() != '/') {
      return Status::InvalidArgument("attached volume '" + volume.path + "' is not an absolute path");
    }
  }
  FE_RETURN_IF_ERROR(ValidatePolicy(request.ttl_s, request.idle_standby_s));
  return ValidateLabels(request.labels);
}

bool IsNonEmptyDirectory(const ConfinedDir& dir, const std::string& relative) {
  Result<std::optional<struct stat>> st = dir.Stat(relative);
  if (!st.ok() || !st->has_value() || !S_ISDIR((*st)->st_mode)) return false;
  return (*st)->st_nlink > 2 || (*st)->st_size > 0;
}

// The imported directory holds a snapshot: its manifest's snapshot_dir (or, without a manifest, the
// conventional "snapshot") is a directory with something in it.
bool HoldsSnapshot(const ConfinedDir& dir) {
  Result<snapshot::Manifest> manifest = snapshot::ReadManifest(dir);
  if (manifest.ok()) return !manifest->snapshot_dir.empty() && IsNonEmptyDirectory(dir, manifest->snapshot_dir);
  return IsNonEmptyDirectory(dir, "snapshot");
}

// A failure that is the imported directory's fault (a missing, malformed or refused file, a path that
// is not a directory) is the request's content, not a missing resource: 422 invalid_content.
Status AsContentError(const Status& status) {
  switch (status.code()) {
    case ErrorCode::kInvalidArgument:
    case ErrorCode::kNotFound:
    case ErrorCode::kFailedPrecondition: return status.WithCode(ErrorCode::kInvalidContent);
    default: return status;
  }
}

// The directory to import, resolved (configs name files by the directory's real path) and opened;
// then everything in it checked (snapshot/tree_check.h). Nothing is written.
Result<ConfinedDir> OpenImportSource(const std::string& requested) {
  char* resolved = ::realpath(requested.c_str(), nullptr);
  if (resolved == nullptr) return Status::FromErrno(errno, "import directory", requested);
  const std::string path = resolved;
  ::free(resolved);
  Result<ConfinedDir> dir = ConfinedDir::Open(path);
  if (!dir.ok()) return AsContentError(dir.status()).Annotate("import directory " + requested);
  FE_RETURN_IF_ERROR(snapshot::CheckGuestTree(*dir).Annotate("import directory " + requested));
  return dir;
}

}  // namespace

Result<Instance> Engine::Create(const CreateRequest& request) {
  FE_RETURN_IF_ERROR(ValidateCreate(request));
  Result<const hypervisor::Plugin*> plugin = PluginFor(request.hypervisor);
  if (!plugin.ok()) return plugin.status();
  std::optional<ConfinedDir> import;
  if (!request.import_dir.empty()) {
    FE_ASSIGN_OR_RETURN(ConfinedDir opened, OpenImportSource(request.import_dir));
    import.emplace(std::move(opened));
  }
  const std::string import_dir = import ? import->path() : std::string();
  InstanceState state = request.state                        ? *request.state
                        : (import && HoldsSnapshot(*import)) ? InstanceState::kStandby
                                                             : InstanceState::kStopped;
  hypervisor::PluginCapabilities capabilities = (*plugin)->Capabilities();
  if (import && !(state == InstanceState::kStandby ? capabilities.fork_standby : capabilities.fork_stopped)) {
    return Status::Unsupported("hypervisor '" + request.hypervisor + "' cannot import a " +
                               std::string(InstanceStateName(state)) + " guest directory");
  }
  // Recognised before anything is written: the plugin's files are there and parse.
  if (import) {
    FE_RETURN_IF_ERROR(AsContentError((*plugin)->CheckGuestDirectory(import_dir, state == InstanceState::kStandby))
                           .Annotate("import directory " + request.import_dir));
  }

  // Admission as for a fork: the name is reserved first, released unless the instance is published.
  FE_ASSIGN_OR_RETURN(NameReservation reservation, ReserveNames({request.name}));
  Instance instance;
  instance.id = reservation.names_and_ids().front().second;
  instance.name = request.name;
  instance.hypervisor = request.hypervisor;
  instance.state = InstanceState::kCreating;
  instance.storage_backend = std::string(backend_->Name());
  instance.volume = instance.id;
  instance.created_at = instance.updated_at = clock_.WallNowRfc3339();
  instance.vcpus = request.vcpus;
  instance.attached_volumes = request.attached_volumes;
  instance.labels = request.labels;
  instance.lifecycle.expires_at = ExpiryFrom(request.ttl_s);
  instance.lifecycle.idle_standby_s = request.idle_standby_s;
  auto failed = [&](std::string_view step, const Status& status) {
    return status.Annotate("create '" + request.name + "': " + std::string(step));
  };

  Reverter reverter;
  if (Status written = store_.Write(instance); !written.ok()) return failed("metadata", written);
  reverter.Add("remove metadata of " + instance.id, [this, id = instance.id] { return store_.Remove(id); });

  if (import_dir.empty()) {
    if (Status created = backend_->Create(instance.volume); !created.ok()) return failed("volume", created);
  } else {
    Result<storage::CloneReport> imported = backend_->Import(import_dir, instance.volume);
    if (!imported.ok()) return failed("import", imported.status());
    spdlog::info("import {} -> {}: {} files, {} bytes, {}", import_dir, instance.volume, imported->files,
                 imported->logical_bytes, imported->mechanism);
  }
  reverter.Add("remove volume " + instance.volume,
               [this, volume = instance.volume] { return backend_->Remove(volume); });
  if (import) {
    // The volume, not the directory checked above, is what the instance runs from: it is checked
    // again, so a change to the directory while it was cloned cannot slip a link in.
    Result<ConfinedDir> volume = ConfinedDir::Open(backend_->Path(instance.volume));
    Status contained = volume.ok() ? snapshot::CheckGuestTree(*volume) : volume.status();
    if (!contained.ok()) return failed("import", contained);
  }
  std::string guest_dir = backend_->Path(instance.volume);

  Result<hypervisor::NetworkIdentity> identity = network_->Allocate(instance.id);
  if (!identity.ok()) return failed("network", identity.status());
  reverter.Add("release lease of " + instance.id, [this, id = instance.id] { return ReleaseLease(id); });
  instance.identity = *identity;

  if (!import_dir.empty()) {
    // A replica's configs name the directory its files had on the original's node.
    const std::string& named_dir = request.replica ? request.replica->origin_dir : import_dir;
    hypervisor::ForkSpec spec{named_dir,    guest_dir, {}, instance.identity, state == InstanceState::kStandby,
                              GuardedDirs()};
    Result<hypervisor::PreparedFork> prepared = (*plugin)->PrepareFork(spec);
    if (!prepared.ok()) return failed("rewrite", AsContentError(prepared.status()));
    // The guest of an imported snapshot keeps whatever identity it was saved with (unknown here): it
    // is handed the instance's own at its next restore only if it is forked first (see fork.cc).
    instance.identity_channel = prepared->restore.identity_channel;
  }
  if (request.as_template) {
    if (Status recorded = RecordTemplateFiles(instance, request); !recorded.ok()) return failed("template", recorded);
  }

  instance.state = state;
  auto entry = std::make_shared<Entry>();
  if (Status committed = Commit(entry, instance); !committed.ok()) return failed("metadata", committed);
  instance = Read(entry);
  {
    std::lock_guard lock(mutex_);
    entries_.emplace(instance.id, entry);
  }
  reservation.Keep();
  reverter.Commit();
  spdlog::info("created instance {} ('{}', {}, {}){}", instance.id, instance.name, instance.hypervisor,
               InstanceStateName(instance.state), import_dir.empty() ? "" : " from " + import_dir);
  PublishCreated(instance);
  return instance;
}

}  // namespace fe::engine
