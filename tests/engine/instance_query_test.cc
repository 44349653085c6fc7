// The listing's filters and its page tokens.
#include "engine/instance_query.h"

#include <gtest/gtest.h>

namespace fe::engine {
namespace {

Instance Made(std::string id, std::string created_at) {
  Instance instance;
  instance.id = std::move(id);
  instance.created_at = std::move(created_at);
  return instance;
}

TEST(InstanceQueryTest, APageTokenCarriesItsCursorAndNothingElseIsAccepted) {
  const PageCursor cursor{"2026-12-07T13:00:00.123Z", "i-0123456789abcdef"};
  const std::string token = EncodePageToken(cursor);
  EXPECT_EQ(token.find_first_not_of("0123456789abcdef"), std::string::npos) << token;
  Result<PageCursor> decoded = DecodePageToken(token);
  ASSERT_TRUE(decoded.ok()) << decoded.status().ToString();
  EXPECT_EQ(*decoded, cursor);
  for (const std::string& bad : {std::string(), std::string("abc"), std::string("zz"), std::string("6162"),
                                 EncodePageToken(cursor) + "0a41", std::string(600, 'a')}) {
    EXPECT_EQ(DecodePageToken(bad).status().code(), ErrorCode::kInvalidArgument) << bad;
  }
}

TEST(InstanceQueryTest, CursorsOrderByCreationTimeThenId) {
  EXPECT_LT(CursorOf(Made("i-b", "2026-12-07T13:00:00.001Z")), CursorOf(Made("i-a", "2026-12-07T13:00:00.002Z")));
  EXPECT_LT(CursorOf(Made("i-a", "2026-12-07T13:00:00.001Z")), CursorOf(Made("i-b", "2026-12-07T13:00:00.001Z")));
}

TEST(InstanceQueryTest, FiltersAreStateParentAncestorAndLabelsAllTogether) {
  Instance fork = Made("i-c", "t");
  fork.state = InstanceState::kRunning;
  fork.parent_id = "i-b";
  fork.ancestors = {{"i-a", "root", "t1"}, {"i-b", "middle", "t2"}};
  fork.labels = {{"team", "x"}};
  InstanceQuery query;
  EXPECT_TRUE(query.Matches(fork));
  query.state = InstanceState::kRunning;
  query.parent = "i-b";
  query.ancestor = "i-a";
  query.labels = {*ParseLabelSelector("team=x")};
  EXPECT_TRUE(query.Matches(fork));
  InstanceQuery other = query;
  other.state = InstanceState::kStandby;
  EXPECT_FALSE(other.Matches(fork));
  other = query;
  other.parent = "i-a";
  EXPECT_FALSE(other.Matches(fork));
  other = query;
  other.ancestor = "i-z";
  EXPECT_FALSE(other.Matches(fork));
  other = query;
  other.labels = {*ParseLabelSelector("team=y")};
  EXPECT_FALSE(other.Matches(fork));
}

TEST(InstanceQueryTest, WithPolicyMatchesOnlyInstancesWithADeadlineOrAnIdleStandby) {
  InstanceQuery with_policy;
  with_policy.with_policy = true;
  Instance plain = Made("i-a", "t");
  EXPECT_FALSE(with_policy.Matches(plain));
  Instance expiring = plain;
  expiring.lifecycle.expires_at = "2030-01-01T00:00:00.000Z";
  EXPECT_TRUE(with_policy.Matches(expiring));
  Instance idle = plain;
  idle.lifecycle.idle_standby_s = 60;
  EXPECT_TRUE(with_policy.Matches(idle));
  EXPECT_TRUE(InstanceQuery{}.Matches(plain)) << "without the flag, policy does not matter";
}

}  // namespace
}  // namespace fe::engine
