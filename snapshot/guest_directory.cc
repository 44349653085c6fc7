#include "snapshot/guest_directory.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <map>
#include <set>
#include <utility>

#include <nlohmann/json.hpp>

#include "base/unique_fd.h"
#include "base/atomic_file.h"
#include "base/fs_util.h"
#include "base/json_fields.h"

namespace fe::snapshot {
namespace {

using Json = nlohmann::ordered_json;

constexpr std::string_view kManifestName = "manifest.json";

constexpr std::array<std::pair<FileRole, std::string_view>, 7> kRoleNames = {{
    {FileRole::kDisk, "disk"},
    {FileRole::kMemory, "memory"},
    {FileRole::kConfig, "config"},
    {FileRole::kDeviceState, "device_state"},
    {FileRole::kPayload, "payload"},
    {FileRole::kRuntime, "runtime"},
    {FileRole::kOther, "other"},
}};

// A path relative to the guest directory: no leading '/', no empty, "." or ".." component.
bool IsCleanRelativePath(std::string_view path) {
  if (path.empty() || path.front() == '/') return false;
  size_t start = 0;
  while (start <= path.size()) {
    size_t end = path.find('/', start);
    if (end == std::string_view::npos) end = path.size();
    std::string_view component = path.substr(start, end - start);
    if (component.empty() || component == "." || component == "..") return false;
    start = end + 1;
  }
  return true;
}

// Manifest errors name the file and the field: "<file>: field 'files[2].role': ...".
Status Invalid(const std::string& file, const std::string& field, const std::string& what) {
  return OrderedJsonFields(Json::object(), file).Fail(field, what);
}

Result<ManifestEntry> ParseEntry(const OrderedJsonFields& root, const Json& entry, const std::string& field) {
  if (!entry.is_object()) return root.Fail(field, "expected an object, found " + std::string(JsonTypeName(entry)));
  OrderedJsonFields fields = root.Nested(entry, field);
  ManifestEntry parsed;
  FE_RETURN_IF_ERROR(fields.String("path", parsed.path, OrderedJsonFields::kRequired));
  if (!IsCleanRelativePath(parsed.path)) {
    return fields.Fail("path", "'" + parsed.path + "' is not a relative path without '..'");
  }
  std::string role_name;
  FE_RETURN_IF_ERROR(fields.String("role", role_name, OrderedJsonFields::kRequired));
  Result<FileRole> role = ParseFileRole(role_name);
  if (!role.ok()) return fields.Fail("role", role.status().message());
  parsed.role = *role;
  return parsed;
}

Result<Manifest> ParseManifest(const Json& root, const std::string& file) {
  if (!root.is_object()) return Invalid(file, "(root)", "expected an object, found " + std::string(JsonTypeName(root)));
  OrderedJsonFields fields(root, file, "", OrderedJsonFields::Nulls::kAreAbsent);
  Manifest manifest;
  FE_RETURN_IF_ERROR(fields.String("hypervisor", manifest.hypervisor, OrderedJsonFields::kOptional));
  FE_RETURN_IF_ERROR(fields.String("snapshot_dir", manifest.snapshot_dir, OrderedJsonFields::kOptional));
  if (!manifest.snapshot_dir.empty() && !IsCleanRelativePath(manifest.snapshot_dir)) {
    return fields.Fail("snapshot_dir", "'" + manifest.snapshot_dir + "' is not a relative path without '..'");
  }
  FE_ASSIGN_OR_RETURN(const Json* files, fields.Array("files", OrderedJsonFields::kRequired));
  std::set<std::string> seen;
  for (size_t i = 0; i < files->size(); ++i) {
    std::string field = "files[" + std::to_string(i) + "]";
    FE_ASSIGN_OR_RETURN(ManifestEntry entry, ParseEntry(fields, (*files)[i], field));
    if (!seen.insert(entry.path).second) {
      return fields.Fail(field + ".path", "'" + entry.path + "' is listed twice");
    }
    manifest.files.push_back(std::move(entry));
  }
  return manifest;
}

Status CheckManifest(const Manifest& manifest, const std::string& file) {
  if (!manifest.snapshot_dir.empty() && !IsCleanRelativePath(manifest.snapshot_dir)) {
    return Invalid(file, "snapshot_dir", "'" + manifest.snapshot_dir + "' is not a relative path without '..'");
  }
  std::set<std::string> seen;
  for (size_t i = 0; i < manifest.files.size(); ++i) {
    const std::string& path = manifest.files[i].path;
    std::string field = "files[" + std::to_string(i) + "].path";
    if (!IsCleanRelativePath(path)) return Invalid(file, field, "'" + path + "' is not a relative path without '..'");
    if (!seen.insert(path).second) return Invalid(file, field, "'" + path + "' is listed twice");
  }
  return Status::Ok();
}

// The existing manifest's JSON, to carry its unknown fields over; an empty object when there is none
// or it cannot be parsed (then there is nothing to keep).
Json ExistingJson(const ConfinedDir& dir) {
  Result<std::string> text = dir.ReadFile(kManifestName);
  if (!text.ok()) return Json::object();
  Json root = Json::parse(*text, nullptr, /*allow_exceptions=*/false);
  return root.is_object() ? root : Json::object();
}

Json EncodeManifest(const Manifest& manifest, Json root) {
  std::map<std::string, Json> old_entries;  // by path, with their unknown fields
  if (auto files = root.find("files"); files != root.end() && files->is_array()) {
    for (const Json& entry : *files) {
      if (entry.is_object() && entry.contains("path") && entry["path"].is_string()) {
        old_entries.emplace(entry["path"].get<std::string>(), entry);
      }
    }
  }
  root["hypervisor"] = manifest.hypervisor;
  root["snapshot_dir"] = manifest.snapshot_dir;
  Json files = Json::array();
  for (const ManifestEntry& entry : manifest.files) {
    auto old = old_entries.find(entry.path);
    Json object = old != old_entries.end() ? old->second : Json::object();
    object["path"] = entry.path;
    object["role"] = std::string(FileRoleName(entry.role));
    files.push_back(std::move(object));
  }
  root["files"] = std::move(files);
  return root;
}

Status RemoveAt(int parent_fd, const std::string& name, const std::string& display);

// Removes everything in the directory `name` of `parent_fd`, keeping the directory itself.
Status EmptyDirectoryAt(int parent_fd, const std::string& name, const std::string& display) {
  Result<UniqueFd> dir = OpenBeneath(parent_fd, name, O_RDONLY | O_DIRECTORY, 0, display);
  if (!dir.ok()) return dir.status();
  std::vector<DirectoryEntry> entries;
  FE_RETURN_IF_ERROR(ReadDirectory(dir->get(), entries, display));
  for (const DirectoryEntry& entry : entries) {
    FE_RETURN_IF_ERROR(RemoveAt(dir->get(), entry.name, display + "/" + entry.name));
  }
  return Status::Ok();
}

// Removes `name` in `parent_fd` without following a symlink: a directory with all it holds.
Status RemoveAt(int parent_fd, const std::string& name, const std::string& display) {
  struct stat st {};
  if (::fstatat(parent_fd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
    return errno == ENOENT ? Status::Ok() : Status::FromErrno(errno, "stat", display);
  }
  if (S_ISDIR(st.st_mode)) {
    FE_RETURN_IF_ERROR(EmptyDirectoryAt(parent_fd, name, display));
    if (::unlinkat(parent_fd, name.c_str(), AT_REMOVEDIR) != 0 && errno != ENOENT) {
      return Status::FromErrno(errno, "remove directory", display);
    }
    return Status::Ok();
  }
  if (::unlinkat(parent_fd, name.c_str(), 0) != 0 && errno != ENOENT) {
    return Status::FromErrno(errno, "remove", display);
  }
  return Status::Ok();
}

// A runtime entry: a file (socket, pid file, log) is removed; a directory (logs/) is emptied and kept,
// since the fork's own processes write there.
Status RemoveRuntimeEntryAt(int parent_fd, const std::string& name, const std::string& display) {
  struct stat st {};
  if (::fstatat(parent_fd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
    return errno == ENOENT ? Status::Ok() : Status::FromErrno(errno, "stat", display);
  }
  if (S_ISDIR(st.st_mode)) return EmptyDirectoryAt(parent_fd, name, display);
  return RemoveAt(parent_fd, name, display);
}

}  // namespace

std::string_view FileRoleName(FileRole role) {
  for (const auto& [value, name] : kRoleNames) {
    if (value == role) return name;
  }
  return "other";
}

Result<FileRole> ParseFileRole(std::string_view name) {
  std::string known;
  for (const auto& [value, role_name] : kRoleNames) {
    if (role_name == name) return value;
    known += (known.empty() ? "" : ", ") + std::string(role_name);
  }
  return Status::InvalidArgument("unknown file role '" + std::string(name) + "' (one of " + known + ")");
}

std::vector<std::string> Manifest::PathsWith(FileRole role) const {
  std::vector<std::string> paths;
  for (const ManifestEntry& entry : files) {
    if (entry.role == role) paths.push_back(entry.path);
  }
  return paths;
}

Result<Manifest> ReadManifest(const std::string& dir) {
  FE_ASSIGN_OR_RETURN(ConfinedDir confined, ConfinedDir::Open(dir));
  return ReadManifest(confined);
}

Result<Manifest> ReadManifest(const ConfinedDir& dir) {
  const std::string file = dir.PathOf(kManifestName);
  Result<std::string> text = dir.ReadFile(kManifestName);
  if (!text.ok()) return text.status();
  Json root;
  try {
    root = Json::parse(*text);
  } catch (const Json::parse_error& error) {
    return Status::InvalidArgument(file + ": not valid JSON: " + error.what());
  }
  return ParseManifest(root, file);
}

Status WriteManifest(const std::string& dir, const Manifest& manifest) {
  FE_ASSIGN_OR_RETURN(ConfinedDir confined, ConfinedDir::Open(dir));
  return WriteManifest(confined, manifest);
}

Status WriteManifest(const ConfinedDir& dir, const Manifest& manifest) {
  FE_RETURN_IF_ERROR(CheckManifest(manifest, dir.PathOf(kManifestName)));
  Json root = EncodeManifest(manifest, ExistingJson(dir));
  return dir.ReplaceFile(kManifestName, root.dump(2) + "\n");
}

Status RemoveRuntimeFiles(const std::string& dir, const Manifest& manifest) {
  FE_ASSIGN_OR_RETURN(ConfinedDir confined, ConfinedDir::Open(dir));
  return RemoveRuntimeFiles(confined, manifest);
}

Status RemoveRuntimeFiles(const ConfinedDir& dir, const Manifest& manifest) {
  FE_RETURN_IF_ERROR(CheckManifest(manifest, dir.PathOf(kManifestName)));
  for (const std::string& path : manifest.PathsWith(FileRole::kRuntime)) {
    std::string display = dir.PathOf(path);
    size_t slash = path.rfind('/');
    UniqueFd parent;
    Result<UniqueFd> opened =
        dir.OpenFile(slash == std::string::npos ? "." : path.substr(0, slash), O_RDONLY | O_DIRECTORY);
    if (!opened.ok()) {
      // Its directory is gone too, or is a plain file: nothing of the runtime file can be there. A
      // symlink on the way is refused (ELOOP, or ENOTDIR for the link itself): it is never followed.
      const int err = opened.status().sys_errno();
      if (err == ENOENT) continue;
      if (err == ENOTDIR && slash != std::string::npos) {
        Result<std::optional<struct stat>> st = dir.Stat(path.substr(0, slash));
        if (st.ok() && st->has_value() && S_ISREG((*st)->st_mode)) continue;
      }
      return opened.status().Annotate("removing runtime file " + display);
    }
    parent = std::move(*opened);
    int parent_fd = parent.get();
    std::string name = slash == std::string::npos ? path : path.substr(slash + 1);
    FE_RETURN_IF_ERROR(RemoveRuntimeEntryAt(parent_fd, name, display));
  }
  return Status::Ok();
}

}  // namespace fe::snapshot
