#include "snapshot/path_rewrite.h"

#include <stdexcept>

namespace fe::snapshot {
namespace {

std::string WithoutTrailingSlash(std::string path) {
  while (path.size() > 1 && path.back() == '/') path.pop_back();
  return path;
}

}  // namespace

bool IsBeneath(std::string_view path, std::string_view dir) {
  return !dir.empty() && path.size() > dir.size() && path.substr(0, dir.size()) == dir && path[dir.size()] == '/';
}

PathRewriter::PathRewriter(std::string source_dir, std::string target_dir)
    : source_dir_(WithoutTrailingSlash(std::move(source_dir))),
      target_dir_(WithoutTrailingSlash(std::move(target_dir))) {
  if (source_dir_.empty() || source_dir_[0] != '/' || target_dir_.empty() || target_dir_[0] != '/') {
    throw std::invalid_argument("PathRewriter needs absolute directories");  // a programming error
  }
}

std::optional<std::string> PathRewriter::Rewrite(std::string_view value) const {
  if (value == source_dir_) return target_dir_;
  if (IsBeneath(value, source_dir_)) {
    return target_dir_ + std::string(value.substr(source_dir_.size()));
  }
  return std::nullopt;
}

std::string PathRewriter::RewriteOrKeep(std::string_view value) const {
  std::optional<std::string> rewritten = Rewrite(value);
  return rewritten ? *rewritten : std::string(value);
}

}  // namespace fe::snapshot
