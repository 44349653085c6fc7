// Labels: what a key and a value may be, how a fork's labels lie over its source's, and how a
// listing's selectors match.
#include "engine/labels.h"

#include <gtest/gtest.h>

#include <string>

namespace fe::engine {
namespace {

TEST(LabelsTest, KeysAreShortWordsAndValuesHoldNoControlCharacters) {
  EXPECT_TRUE(ValidateLabels({{"team", "agents"}, {"example.com/task", "t 42 = ok"}, {"a", ""}}).ok());
  for (const std::string& key : {std::string(), std::string("-team"), std::string("team."), std::string("a b"),
                                 std::string("é"), std::string(kMaxLabelKeyLength + 1, 'k')}) {
    Status status = ValidateLabels({{key, "v"}});
    EXPECT_EQ(status.code(), ErrorCode::kInvalidArgument) << key;
    EXPECT_NE(status.message().find("labels." + key), std::string::npos) << status.message();
  }
  EXPECT_FALSE(ValidateLabels({{"k", std::string(kMaxLabelValueLength + 1, 'v')}}).ok());
  EXPECT_FALSE(ValidateLabels({{"k", "line\nbreak"}}).ok());
  Labels many;
  for (size_t i = 0; i <= kMaxLabels; ++i) many["k" + std::to_string(i)] = "v";
  EXPECT_NE(ValidateLabels(many).message().find("at most 64"), std::string::npos);
}

TEST(LabelsTest, AForksLabelsAreItsSourcesWithTheRequestsKeysReplaced) {
  EXPECT_EQ(MergeLabels({{"team", "a"}, {"tier", "gold"}}, {{"tier", "free"}, {"task", "7"}}),
            (Labels{{"team", "a"}, {"tier", "free"}, {"task", "7"}}));
}

TEST(LabelsTest, ReadingLabelsNamesTheFieldThatIsWrong) {
  nlohmann::json body = {{"labels", {{"team", 7}}}};
  Labels labels;
  Status status = ReadLabels(JsonFields(body, "fork request"), "labels", labels);
  EXPECT_EQ(status.message(), "fork request: field 'labels.team': expected a string, found integer");
  body = {{"labels", {{"bad key", "x"}}}};
  EXPECT_NE(ReadLabels(JsonFields(body, ""), "labels", labels).message().find("field 'labels.bad key'"),
            std::string::npos);
  body = {{"labels", {{"team", "a"}}}};
  ASSERT_TRUE(ReadLabels(JsonFields(body, ""), "labels", labels).ok());
  EXPECT_EQ(labels, (Labels{{"team", "a"}}));
}

TEST(LabelsTest, SelectorsMatchAValueOrJustAKeyAndAllMustMatch) {
  Result<LabelSelector> exact = ParseLabelSelector("team=a=b");
  ASSERT_TRUE(exact.ok());
  EXPECT_EQ(exact->key, "team");
  EXPECT_EQ(exact->value, "a=b");
  Result<LabelSelector> present = ParseLabelSelector("tier");
  ASSERT_TRUE(present.ok());
  EXPECT_FALSE(present->value.has_value());
  EXPECT_FALSE(ParseLabelSelector("=x").ok());
  const Labels labels{{"team", "a=b"}, {"tier", "gold"}};
  EXPECT_TRUE(MatchesLabels(labels, {*exact, *present}));
  EXPECT_TRUE(MatchesLabels(labels, {}));
  EXPECT_FALSE(MatchesLabels(labels, {*exact, *ParseLabelSelector("tier=free")}));
  EXPECT_FALSE(MatchesLabels(labels, {*ParseLabelSelector("task")}));
  EXPECT_TRUE(MatchesLabels({{"empty", ""}}, {*ParseLabelSelector("empty=")}));
}

}  // namespace
}  // namespace fe::engine
