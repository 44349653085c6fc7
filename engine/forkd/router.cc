#include "engine/forkd/router.h"

namespace fe::engine::forkd {

std::vector<std::string_view> PathSegments(std::string_view path) {
  std::vector<std::string_view> segments;
  if (path.empty() || path.front() != '/') return segments;
  path.remove_prefix(1);
  while (true) {
    size_t slash = path.find('/');
    segments.push_back(path.substr(0, slash));
    if (slash == std::string_view::npos) break;
    path.remove_prefix(slash + 1);
  }
  return segments;
}

bool MatchPattern(std::string_view pattern, std::string_view path, std::vector<std::string>* params) {
  std::vector<std::string_view> want = PathSegments(pattern);
  std::vector<std::string_view> have = PathSegments(path);
  if (want.size() != have.size() || have.empty()) return false;
  std::vector<std::string> values;
  for (size_t i = 0; i < want.size(); ++i) {
    bool placeholder = want[i].size() > 2 && want[i].front() == '{' && want[i].back() == '}';
    if (placeholder) {
      if (have[i].empty()) return false;
      values.emplace_back(have[i]);
    } else if (want[i] != have[i]) {
      return false;
    }
  }
  for (std::string& value : values) params->push_back(std::move(value));
  return true;
}

}  // namespace fe::engine::forkd
