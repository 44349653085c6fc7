// Where pool specs live on disk: <data_root>/pools/<name>.json (directory mode 0700, files 0600),
// each replaced atomically (temporary file, fsync, rename, directory fsync) like instance metadata,
// so a crash leaves the old spec or the new one. A pool's members are instances (their metadata names
// the pool) and are not stored here.
//
// Threads: methods may be called concurrently for different names; callers serialise per name.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/status.h"
#include "base/unique_fd.h"
#include "engine/pools/pool_spec.h"

namespace fe::engine::pools {

struct StoredPool {
  PoolSpec spec;
  PoolCounters counters;
};

nlohmann::json PoolSpecToJson(const PoolSpec& spec);
// `origin` names the file in errors ("…/pools/p.json: field 'min_size': …").
Result<PoolSpec> PoolSpecFromJson(const nlohmann::json& json, std::string_view origin);

class PoolStore {
 public:
  // Creates `root` (<data_root>/pools, engine/data_root.h; mode 0700) when missing and opens it.
  static Result<PoolStore> Open(std::string root);

  const std::string& root() const { return root_; }   // <data_root>/pools
  std::string PathOf(const std::string& name) const;  // <root>/<name>.json

  // The spec and the pool's counters in one file ("counters": {...}; a file without them, written
  // before counters were kept, reads as zeros).
  Status Write(const PoolSpec& spec, const PoolCounters& counters);
  // Unlinks <name>.json durably; Ok when it does not exist.
  Status Remove(const std::string& name);
  // Every <name>.json, sorted by name. A file that does not parse (or whose name field does not match
  // the file name) fails the whole listing, naming the file: pools are never silently dropped.
  Result<std::vector<StoredPool>> List() const;

 private:
  PoolStore(std::string root, UniqueFd root_fd) : root_(std::move(root)), root_fd_(std::move(root_fd)) {}

  std::string root_;
  UniqueFd root_fd_;
};

}  // namespace fe::engine::pools
