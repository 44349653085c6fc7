#include "snapshot/path_rewrite.h"

#include <stdexcept>

namespace fe::snapshot {
namespace {

std::string WithoutTrailingSlash(std::string path) {
  while (path.size() > 1 && path.back() == '/') path.pop_back();
  return path;
}

}  // namespace

bool IsNormalizedPath(std::string_view path) {
  if (path == "/") return true;
  std::string_view rest = !path.empty() && path.front() == '/' ? path.substr(1) : path;
  if (rest.empty()) return false;
  while (true) {
    const size_t slash = rest.find('/');
    const std::string_view component = rest.substr(0, slash);
    if (component.empty() || component == "." || component == "..") return false;
    if (slash == std::string_view::npos) return true;
    rest.remove_prefix(slash + 1);
  }
}

bool IsBeneath(std::string_view path, std::string_view dir) {
  return !dir.empty() && path.size() > dir.size() && path.substr(0, dir.size()) == dir && path[dir.size()] == '/';
}

PathRewriter::PathRewriter(std::string source_dir, std::string target_dir, std::vector<std::string> guarded_dirs)
    : source_dir_(WithoutTrailingSlash(std::move(source_dir))),
      target_dir_(WithoutTrailingSlash(std::move(target_dir))) {
  for (std::string& dir : guarded_dirs) {
    if (!dir.empty()) guarded_dirs_.push_back(WithoutTrailingSlash(std::move(dir)));
  }
  if (source_dir_.empty() || source_dir_[0] != '/' || target_dir_.empty() || target_dir_[0] != '/') {
    throw std::invalid_argument("PathRewriter needs absolute directories");  // a programming error
  }
}

Status PathRewriter::Check(std::string_view value) const {
  if (value.empty()) return Status::Ok();
  if (!IsNormalizedPath(value)) {
    return Status::InvalidContent("path '" + std::string(value) +
                                  "' is not normalized (it has a '.', '..' or empty component); name the file "
                                  "by its plain absolute path");
  }
  const auto own = [&](std::string_view dir) { return value == dir || IsBeneath(value, dir); };
  if (own(source_dir_) || own(target_dir_)) return Status::Ok();
  for (const std::string& guarded : guarded_dirs_) {
    if (own(guarded)) {
      return Status::InvalidContent("path '" + std::string(value) + "' points into " + guarded +
                                    ", outside the instance's own directory " + source_dir_ +
                                    ": another instance's files or forkd's state are no part of this VM");
    }
  }
  return Status::Ok();
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
