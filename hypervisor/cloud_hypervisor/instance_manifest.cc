#include "hypervisor/cloud_hypervisor/instance_manifest.h"

#include <sys/stat.h>

#include <algorithm>
#include <optional>
#include <set>

#include "hypervisor/cloud_hypervisor/instance_files.h"
#include "hypervisor/cloud_hypervisor/field_patterns.h"
#include "hypervisor/cloud_hypervisor/path_fields.h"
#include "base/confined_dir.h"

namespace fe::hypervisor::cloud_hypervisor {
namespace {

using snapshot::FileRole;

// `path` relative to `dir` when it lies beneath it as a clean path (no empty, "." or ".." component).
std::optional<std::string> RelativeBeneath(const std::string& dir, const std::string& path) {
  if (path.size() <= dir.size() + 1 || path.compare(0, dir.size(), dir) != 0 || path[dir.size()] != '/') {
    return std::nullopt;
  }
  std::string relative = path.substr(dir.size() + 1);
  size_t start = 0;
  while (start <= relative.size()) {
    size_t end = std::min(relative.find('/', start), relative.size());
    std::string_view component(relative.data() + start, end - start);
    if (component.empty() || component == "." || component == "..") return std::nullopt;
    start = end + 1;
  }
  return relative;
}

class ManifestBuilder {
 public:
  explicit ManifestBuilder(const std::string& dir) : dir_(dir) {
    while (dir_.size() > 1 && dir_.back() == '/') dir_.pop_back();
  }

  void Add(const std::string& relative, FileRole role) {
    if (seen_.insert(relative).second) manifest_.files.push_back({relative, role});
  }

  void AddIfPresent(const std::string& relative, FileRole role) {
    Result<ConfinedDir> dir = ConfinedDir::Open(dir_);
    if (!dir.ok()) return;
    Result<std::optional<struct stat>> st = dir->Stat(relative);
    if (st.ok() && st->has_value()) Add(relative, role);
  }

  // Every path field of the config at `relative` that lies beneath the directory.
  Status AddPathsOf(const std::string& relative) {
    Result<std::string> text = ReadFileBeneath(dir_, relative);
    if (!text.ok()) return text.status();
    Result<Json> config = ParseObject(*text, relative);
    if (!config.ok()) return config.status();
    for (const PathField& path_field : PathFields()) {
      auto add = [&](Json& parent, const std::string& key, const std::string& field) -> Status {
        Result<std::string> value = StringAt(parent, key, relative, field);
        if (!value.ok()) return value.status();
        if (std::optional<std::string> inside = RelativeBeneath(dir_, *value)) Add(*inside, path_field.role);
        return Status::Ok();
      };
      FE_RETURN_IF_ERROR(ForEachField(*config, path_field.pattern, relative, add));
    }
    return Status::Ok();
  }

  snapshot::Manifest Take() { return std::move(manifest_); }
  snapshot::Manifest& manifest() { return manifest_; }

 private:
  std::string dir_;
  std::set<std::string> seen_;
  snapshot::Manifest manifest_;
};

}  // namespace

Result<snapshot::Manifest> DescribeInstance(const std::string& dir) {
  Result<InstanceFiles> files = FindInstanceFiles(dir);
  if (!files.ok()) return files.status();
  ManifestBuilder builder(dir);
  builder.manifest().hypervisor = kKind;
  builder.manifest().snapshot_dir = files->snapshot_dir;
  for (const auto* configs : {&files->boot_configs, &files->snapshot_configs}) {
    for (const std::string& config : *configs) builder.Add(config, FileRole::kConfig);
  }
  if (!files->snapshot_dir.empty()) {
    builder.AddIfPresent(files->snapshot_dir + "/" + std::string(kSnapshotStateName), FileRole::kDeviceState);
    builder.AddIfPresent(files->snapshot_dir + "/" + std::string(kSnapshotMemoryName), FileRole::kMemory);
  }
  builder.Add(std::string(kApiSocketName), FileRole::kRuntime);
  for (const auto* configs : {&files->boot_configs, &files->snapshot_configs}) {
    for (const std::string& config : *configs) FE_RETURN_IF_ERROR(builder.AddPathsOf(config));
  }
  return builder.Take();
}

}  // namespace fe::hypervisor::cloud_hypervisor
