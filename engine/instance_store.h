// Where instance metadata lives on disk, and how it is written so a crash never leaves half a file.
//
//   <data_root>/instances/                 mode 0700
//   <data_root>/instances/<id>/            mode 0700: the metadata and the hypervisor's runtime files
//   <data_root>/instances/<id>/instance.json
//
// instance.json is replaced atomically (temporary file, fsync, rename, directory fsync), so a reader
// sees the old or the new content. Remove() unlinks instance.json first and makes that durable before
// removing the rest of the directory: once Remove() has begun, a crash leaves a directory without
// metadata, which recovery (Engine::Open) removes, never a half-removed instance that looks alive.
//
// Threads: methods may be called concurrently for different ids; callers serialise per id.
#pragma once

#include <string>
#include <vector>

#include "base/status.h"
#include "base/unique_fd.h"
#include "engine/instance.h"

namespace fe::engine {

inline constexpr std::string_view kMetadataName = "instance.json";

class InstanceStore {
 public:
  // Creates `root` (<data_root>/instances, engine/data_root.h; mode 0700) when missing and opens it.
  static Result<InstanceStore> Open(std::string root);

  const std::string& root() const { return root_; }       // <data_root>/instances
  std::string Dir(const std::string& id) const;           // <root>/<id>
  std::string MetadataPath(const std::string& id) const;  // <root>/<id>/instance.json

  // Creates the instance's directory if needed and replaces its instance.json with `instance`.
  Status Write(const Instance& instance);
  // NotFound when <id>/instance.json does not exist; InvalidArgument naming the file and the field
  // when it does not parse or belongs to another id.
  Result<Instance> Read(const std::string& id) const;
  // Deferred durability, for many instances at once (pool releases, engine/release_journal.h):
  // Stage writes <id>/.instance.json.staged without syncing it; PublishStaged renames it over
  // instance.json, also without syncing; SyncFilesystem (syncfs) makes everything written so far
  // durable. Stage all, sync, publish all, sync: a crash leaves each instance.json old or new, whole.
  Status Stage(const Instance& instance);
  Status PublishStaged(const std::string& id);
  // PublishStaged and an fsync of the instance's directory: the one flush that commits an instance
  // whose staged file an earlier sync made durable (a fork: engine/fork_steps.cc).
  Status PublishStagedDurably(const std::string& id);
  Status SyncFilesystem();
  // Unlinks the metadata durably, then removes the directory and everything in it. Ok when nothing
  // of the instance exists.
  Status Remove(const std::string& id);
  // Names of the directories under root(), sorted (temporary names starting with '.' excluded).
  Result<std::vector<std::string>> ListIds() const;

 private:
  InstanceStore(std::string root, UniqueFd root_fd) : root_(std::move(root)), root_fd_(std::move(root_fd)) {}
  Status RenameStaged(const std::string& id, bool sync_directory);

  std::string root_;
  UniqueFd root_fd_;
};

}  // namespace fe::engine
