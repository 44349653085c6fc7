// Exact path rewriting for forks: a value is rewritten only when it is the source directory itself or
// a path beneath it (the source directory followed by '/'). Free text such as a kernel command line
// is never passed through here, and a value that merely contains the source path (as a substring, or
// as a sibling like "/data/vm-10" for "/data/vm-1") is left alone.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"

namespace fe::snapshot {

// True when `path` lies strictly beneath the directory `dir` (dir + '/' + something).
bool IsBeneath(std::string_view path, std::string_view dir);

// True when no component of `path` is empty, "." or ".." ("/" itself is normalized).
bool IsNormalizedPath(std::string_view path);

class PathRewriter {
 public:
  // Both directories are absolute, without trailing '/'. `guarded_dirs`: directories no path of the
  // fork may point into except its own (the data root: other instances' volumes, forkd's state).
  PathRewriter(std::string source_dir, std::string target_dir, std::vector<std::string> guarded_dirs = {});

  // InvalidContent when `value`, a path a config names, may not stand in a fork's config: it is not
  // normalized (a ".", ".." or empty component: where it leads would depend on what lies on its way,
  // and "<source>/../<other>" is not beneath the source at all), or it points into a guarded
  // directory outside the source and target directories. Call it on every path field before Rewrite.
  Status Check(std::string_view value) const;

  // The rewritten value, or nullopt when `value` is not `source_dir` or beneath it.
  std::optional<std::string> Rewrite(std::string_view value) const;
  // Rewrite(value) or value unchanged.
  std::string RewriteOrKeep(std::string_view value) const;

  const std::string& source_dir() const { return source_dir_; }
  const std::string& target_dir() const { return target_dir_; }

 private:
  std::string source_dir_;
  std::string target_dir_;
  std::vector<std::string> guarded_dirs_;
};

}  // namespace fe::snapshot
