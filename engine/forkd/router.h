// The route table of the API: (method, pattern) pairs whose patterns are paths with "{id}"
// placeholders standing for one non-empty path segment. Matching is segment by segment (no regular
// expressions), and the table is what the OpenAPI coverage test compares with openapi.json.
#pragma once

#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace fe::engine::forkd {

struct RouteMatch {
  size_t route = 0;                 // index into the table
  std::vector<std::string> params;  // placeholder values, in order
};

// Index of the route whose method and pattern match, with the placeholder values; nullopt if none.
template <typename Route>
std::optional<RouteMatch> MatchRoute(const std::vector<Route>& routes, std::string_view method, std::string_view path);

// Splits "/v1/instances/x" into {"v1","instances","x"}; a trailing slash yields an empty last segment.
std::vector<std::string_view> PathSegments(std::string_view path);

// Whether `path` matches `pattern`; appends placeholder values to `params` when it does.
bool MatchPattern(std::string_view pattern, std::string_view path, std::vector<std::string>* params);

// The methods the table serves on `path` (under any of its patterns).
template <typename Route>
std::set<std::string> AllowedMethods(const std::vector<Route>& routes, std::string_view path) {
  std::set<std::string> allowed;
  for (const Route& route : routes) {
    std::vector<std::string> ignored;
    if (MatchPattern(route.pattern, path, &ignored)) allowed.insert(route.method);
  }
  return allowed;
}

template <typename Route>
std::optional<RouteMatch> MatchRoute(const std::vector<Route>& routes, std::string_view method, std::string_view path) {
  for (size_t i = 0; i < routes.size(); ++i) {
    std::vector<std::string> params;
    if (routes[i].method == method && MatchPattern(routes[i].pattern, path, &params)) {
      return RouteMatch{i, std::move(params)};
    }
  }
  return std::nullopt;
}

}  // namespace fe::engine::forkd
