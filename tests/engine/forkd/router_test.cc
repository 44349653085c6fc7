#include "engine/forkd/router.h"

#include <gtest/gtest.h>

namespace fe::engine::forkd {
namespace {

struct Route {
  std::string method;
  std::string pattern;
};

TEST(RouterTest, MatchesMethodAndSegmentsAndCapturesPlaceholders) {
  std::vector<Route> routes{
      {"GET", "/v1/instances"}, {"GET", "/v1/instances/{id}"}, {"POST", "/v1/instances/{id}/fork"}};
  std::optional<RouteMatch> match = MatchRoute(routes, "POST", "/v1/instances/web/fork");
  ASSERT_TRUE(match);
  EXPECT_EQ(match->route, 2u);
  EXPECT_EQ(match->params, std::vector<std::string>{"web"});
  EXPECT_EQ(MatchRoute(routes, "GET", "/v1/instances")->route, 0u);
  EXPECT_FALSE(MatchRoute(routes, "DELETE", "/v1/instances/web"));
  EXPECT_FALSE(MatchRoute(routes, "GET", "/v1/instances/"));     // empty placeholder
  EXPECT_FALSE(MatchRoute(routes, "GET", "/v1/instances/a/b"));  // extra segment
  EXPECT_FALSE(MatchRoute(routes, "GET", "/v1/instances/a/fork/"));
  EXPECT_FALSE(MatchRoute(routes, "GET", "v1/instances"));
}

}  // namespace
}  // namespace fe::engine::forkd
