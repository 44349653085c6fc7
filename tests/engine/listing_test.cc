// Labels, ancestry and the listing at the engine: forks inherit their source's labels under the
// request's, keep their whole chain of ancestors when one in it is deleted (and across a restart),
// and a listing filtered by labels, state, parent or ancestor pages in creation order without
// repeating or skipping an instance while others come and go.
#include <algorithm>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "engine/engine.h"
#include "tests/engine/engine_fixture.h"

namespace fe::engine {
namespace {

using fe::test::ScratchFs;
using test::EngineFixture;

ForkRequest Fork(std::string name, int count, Labels labels = {}) {
  ForkRequest request;
  request.name = std::move(name);
  request.count = count;
  request.labels = std::move(labels);
  return request;
}

std::vector<std::string> Names(const std::vector<Instance>& instances) {
  std::vector<std::string> names;
  for (const Instance& instance : instances) names.push_back(instance.name);
  return names;
}

class ListingTest : public fe::test::ScratchTest {
 protected:
  void SetUp() override {
    FE_SCRATCH_DIR(scratch, ScratchFs::kXfs);
    FE_ASSERT_OK(fixture_.Init(scratch));
    CreateRequest request;
    request.name = "src";
    request.hypervisor = "cloud-hypervisor";
    request.import_dir = fixture_.TemplateDir();
    request.labels = {{"team", "a"}, {"tier", "gold"}};
    Result<Instance> source = engine().Create(request);
    FE_ASSERT_OK(source);
    source_ = *source;
  }
  Engine& engine() { return fixture_.engine(); }
  // Every page of `query`, `limit` at a time.
  std::vector<Instance> AllPages(InstanceQuery query, size_t limit) {
    query.limit = limit;
    std::vector<Instance> all;
    for (int pages = 0; pages < 100; ++pages) {
      InstancePage page = engine().List(query);
      EXPECT_LE(page.instances.size(), limit);
      all.insert(all.end(), page.instances.begin(), page.instances.end());
      if (!page.next) return all;
      query.after = page.next;
    }
    ADD_FAILURE() << "the pages never ended";
    return all;
  }

  EngineFixture fixture_;
  Instance source_;
};

TEST_F(ListingTest, ForksInheritLabelsUnderTheRequestsAndKeepTheirAncestryWhenAnAncestorIsDeleted) {
  EXPECT_EQ(source_.labels, (Labels{{"team", "a"}, {"tier", "gold"}}));
  Result<std::vector<ForkOutcome>> kids = engine().Fork("src", Fork("kid", 2, {{"tier", "free"}, {"task", "7"}}));
  FE_ASSERT_OK(kids);
  const Instance& kid = kids->front().instance;
  EXPECT_EQ(kid.labels, (Labels{{"team", "a"}, {"tier", "free"}, {"task", "7"}}));
  ASSERT_EQ(kid.ancestors.size(), 1u);
  EXPECT_EQ(kid.ancestors[0], (Ancestor{source_.id, "src", kid.forked_at, false}));

  Result<std::vector<ForkOutcome>> grandchildren = engine().Fork("kid-1", Fork("grand", 1));
  FE_ASSERT_OK(grandchildren);
  FE_ASSERT_OK(engine().Delete("kid-1"));
  FE_ASSERT_OK(fixture_.Reopen());
  Result<Instance> grand = engine().Get("grand");
  FE_ASSERT_OK(grand);
  ASSERT_EQ(grand->ancestors.size(), 2u);
  EXPECT_EQ(grand->ancestors[0].id, source_.id);
  EXPECT_EQ(grand->ancestors[1].id, kid.id);
  EXPECT_EQ(grand->ancestors[1].name, "kid-1");
  EXPECT_EQ(grand->parent_id, kid.id);
  EXPECT_EQ(grand->labels, kid.labels);

  InstanceQuery descendants;
  descendants.ancestor = source_.id;
  EXPECT_EQ(Names(engine().List(descendants).instances), (std::vector<std::string>{"kid-2", "grand"}));
  InstanceQuery children;
  children.parent = source_.id;
  EXPECT_EQ(Names(engine().List(children).instances), (std::vector<std::string>{"kid-2"}));
}

TEST_F(ListingTest, AForkWhoseLabelsWouldBeInvalidOrTooManyIsRefusedAndMakesNothing) {
  Labels many;
  for (size_t i = 0; i + 1 < kMaxLabels; ++i) many["k" + std::to_string(i)] = "v";  // 63 + the source's 2
  Result<std::vector<ForkOutcome>> refused = engine().Fork("src", Fork("over", 3, many));
  EXPECT_EQ(refused.status().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(refused.status().message().find("labels of 'src'"), std::string::npos) << refused.status().ToString();
  EXPECT_EQ(engine().Fork("src", Fork("bad", 1, {{"no spaces", "v"}})).status().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(Names(engine().List()), (std::vector<std::string>{"src"}));
  EXPECT_FALSE(engine().Exists("over-1"));
}

TEST_F(ListingTest, PagesFollowCreationOrderAndNeitherRepeatNorSkipWhileInstancesComeAndGo) {
  FE_ASSERT_OK(engine().Fork("src", Fork("a", 12, {{"set", "a"}})));
  FE_ASSERT_OK(engine().Fork("src", Fork("b", 5, {{"set", "b"}})));
  InstanceQuery set_a;
  set_a.labels = {*ParseLabelSelector("set=a")};
  const std::vector<Instance> whole = engine().List(set_a).instances;
  ASSERT_EQ(whole.size(), 12u);
  EXPECT_EQ(Names(AllPages(set_a, 5)), Names(whole));
  EXPECT_EQ(Names(AllPages(set_a, 12)), Names(whole));

  // A first page, then one of the next page's instances deleted and new ones made before the rest.
  set_a.limit = 5;
  InstancePage first = engine().List(set_a);
  ASSERT_TRUE(first.next.has_value());
  FE_ASSERT_OK(engine().Delete(whole[7].id));
  FE_ASSERT_OK(engine().Fork("src", Fork("late", 2, {{"set", "a"}})));
  InstanceQuery rest = set_a;
  rest.after = first.next;
  std::vector<Instance> seen = first.instances;
  std::vector<Instance> remaining = AllPages(rest, 5);
  seen.insert(seen.end(), remaining.begin(), remaining.end());
  std::set<std::string> ids;
  for (const Instance& instance : seen) EXPECT_TRUE(ids.insert(instance.id).second) << instance.name << " twice";
  for (size_t i = 0; i < whole.size(); ++i) {
    if (i != 7) {
      EXPECT_EQ(ids.count(whole[i].id), 1u) << whole[i].name << " skipped";
    }
  }
  EXPECT_EQ(ids.count(whole[7].id), 0u);
  // The new ones come last (one fan-out's forks share their creation time: among them, by id).
  std::vector<std::string> last_two = Names(std::vector<Instance>(seen.end() - 2, seen.end()));
  std::sort(last_two.begin(), last_two.end());
  EXPECT_EQ(last_two, (std::vector<std::string>{"late-1", "late-2"}));

  InstanceQuery stopped_b;
  stopped_b.labels = {*ParseLabelSelector("set=b")};
  stopped_b.state = source_.state;
  EXPECT_EQ(engine().List(stopped_b).instances.size(), 5u);
  stopped_b.state = InstanceState::kRunning;
  EXPECT_TRUE(engine().List(stopped_b).instances.empty());
}

}  // namespace
}  // namespace fe::engine
