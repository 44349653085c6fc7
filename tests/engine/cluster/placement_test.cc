// Placement (engine/cluster/placement.h) over hand-made indexes: which nodes may take a request and
// in which order a router tries them.
#include "engine/cluster/placement.h"

#include <gtest/gtest.h>

namespace fe::engine::cluster {
namespace {

NodeInfo Node(const std::string& name, int budget, int used) {
  NodeInfo node;
  node.name = name;
  node.api = "10.0.0.1:7000";
  node.hypervisors = {"qemu", "cloud-hypervisor"};
  node.cpu_model = "Xeon A";
  node.cpu_budget_vcpus = budget;
  node.cpu_used_vcpus = used;
  return node;
}

PlacementNeed Need(std::vector<std::string> holders = {}, std::string template_id = "", std::string hypervisor = "",
                   std::string cpu_model = "", int vcpus = 1) {
  PlacementNeed need;
  need.holders = std::move(holders);
  need.template_id = std::move(template_id);
  need.hypervisor = std::move(hypervisor);
  need.cpu_model = std::move(cpu_model);
  need.vcpus = vcpus;
  return need;
}

ClusterIndex Index(std::vector<NodeInfo> nodes) {
  ClusterIndex index;
  for (NodeInfo& node : nodes) index.nodes[node.name] = std::move(node);
  return index;
}

std::vector<std::string> Rank(const ClusterIndex& index, const PlacementNeed& need) {
  std::mt19937_64 random(7);
  Result<std::vector<std::string>> ranked = RankNodes(index, need, random);
  EXPECT_TRUE(ranked.ok()) << ranked.status().ToString();
  return ranked.ok() ? *ranked : std::vector<std::string>{};
}

TEST(PlacementTest, OnlyTheTemplatesHoldersAreCandidates) {
  const ClusterIndex index = Index({Node("a", 8, 0), Node("b", 8, 0), Node("c", 8, 0)});
  EXPECT_EQ(Rank(index, Need({"b"})), std::vector<std::string>{"b"});
}

TEST(PlacementTest, ANodeWithoutFreeVcpusIsPassedOverAndTheRequestSpillsToAnotherHolder) {
  const ClusterIndex index = Index({Node("a", 4, 3), Node("b", 4, 0)});
  EXPECT_EQ(Rank(index, Need({"a", "b"}, "", "", "", 2)), std::vector<std::string>{"b"});
  // Without a budget a node has no limit.
  const ClusterIndex unlimited = Index({Node("a", 0, 300)});
  EXPECT_EQ(Rank(unlimited, Need({}, "", "", "", 64)), std::vector<std::string>{"a"});
}

TEST(PlacementTest, ANodeOfAnotherCpuModelOrWithoutTheHypervisorIsNotEligible) {
  NodeInfo other_cpu = Node("a", 8, 0);
  other_cpu.cpu_model = "EPYC B";
  NodeInfo no_qemu = Node("b", 8, 0);
  no_qemu.hypervisors = {"firecracker"};
  const ClusterIndex index = Index({other_cpu, no_qemu, Node("c", 8, 0)});
  EXPECT_EQ(Rank(index, Need({}, "", "qemu", "Xeon A")), std::vector<std::string>{"c"});
}

TEST(PlacementTest, DrainingNodesAndNodesWithoutAnApiTakeNothing) {
  NodeInfo draining = Node("a", 8, 0);
  draining.draining = true;
  NodeInfo no_api = Node("b", 8, 0);
  no_api.api.clear();
  const ClusterIndex index = Index({draining, no_api, Node("c", 8, 0)});
  EXPECT_EQ(Rank(index, Need()), std::vector<std::string>{"c"});
}

TEST(PlacementTest, NoEligibleNodeIsInsufficientResourcesSayingWhyForEachCandidate) {
  NodeInfo draining = Node("a", 8, 0);
  draining.draining = true;
  const ClusterIndex index = Index({draining, Node("b", 2, 2)});
  std::mt19937_64 random(1);
  Result<std::vector<std::string>> ranked = RankNodes(index, Need({"a", "b", "gone"}), random);
  ASSERT_FALSE(ranked.ok());
  EXPECT_EQ(ranked.status().code(), ErrorCode::kInsufficientResources);
  EXPECT_NE(ranked.status().message().find("a is draining"), std::string::npos) << ranked.status().ToString();
  EXPECT_NE(ranked.status().message().find("b has 0 of 1 vCPUs free"), std::string::npos);
  EXPECT_NE(ranked.status().message().find("gone is not alive"), std::string::npos);
}

TEST(PlacementTest, NodesWithReadyPoolMembersOfTheTemplateComeFirstMostReadyFirst) {
  ClusterIndex index = Index({Node("a", 8, 0), Node("b", 8, 6), Node("c", 8, 7)});
  index.pools = {PoolInfo{"b", "p", "t", 1, 0, 4}, PoolInfo{"c", "p", "t", 3, 0, 4},
                 PoolInfo{"a", "q", "other", 9, 0, 9}};
  EXPECT_EQ(Rank(index, Need({}, "t")), (std::vector<std::string>{"c", "b", "a"}));
}

TEST(PlacementTest, TheFirstChoiceIsTheLeastCommittedOfKSampledNodesAndTheRestFollowByLoad) {
  const ClusterIndex index = Index({Node("a", 8, 7), Node("b", 8, 1), Node("c", 8, 4), Node("d", 8, 2)});
  // K = every node: the least committed first, then by load.
  std::mt19937_64 random(3);
  EXPECT_EQ(*RankNodes(index, Need(), random, 4), (std::vector<std::string>{"b", "d", "c", "a"}));
  // K = 2: the first is never the most committed node, and over many draws the least committed
  // leads most often but not always (no herd onto one node).
  std::map<std::string, int> first;
  for (int draw = 0; draw < 400; ++draw) ++first[RankNodes(index, Need(), random, 2)->front()];
  EXPECT_EQ(first["a"], 0);
  EXPECT_GT(first["b"], first["d"]);
  EXPECT_GT(first["d"], 0);
  EXPECT_GT(first["c"], 0);
}

TEST(PlacementTest, EquallyLoadedNodesShareTheFirstChoice) {
  const ClusterIndex index = Index({Node("a", 8, 0), Node("b", 8, 0), Node("c", 8, 0)});
  std::mt19937_64 random(5);
  std::map<std::string, int> first;
  for (int draw = 0; draw < 300; ++draw) ++first[RankNodes(index, Need(), random, 2)->front()];
  for (const char* node : {"a", "b", "c"}) EXPECT_GT(first[node], 60) << node;
}

TEST(PlacementTest, CommittedCpuIsAFractionOfTheBudget) {
  EXPECT_DOUBLE_EQ(CommittedCpu(Node("a", 8, 2)), 0.25);
  EXPECT_LT(CommittedCpu(Node("a", 0, 2)), CommittedCpu(Node("a", 8, 1)));
}

}  // namespace
}  // namespace fe::engine::cluster

namespace fe::engine::cluster {
namespace {

using Parts = std::vector<std::pair<std::string, int>>;

TEST(SplitCountTest, AFanOutIsSplitAcrossTheNodesWithTheMostRoomFirstOnAsFewAsPossible) {
  const ClusterIndex index = Index({Node("a", 4, 2), Node("b", 4, 1), Node("c", 8, 8)});
  Result<Parts> parts = SplitCount(index, {"a", "b", "c"}, Need({}, "", "", "", 1), 5);
  ASSERT_TRUE(parts.ok()) << parts.status().ToString();
  EXPECT_EQ(*parts, (Parts{{"b", 3}, {"a", 2}}));
  // Two vCPUs each: a has room for 1, b for 1.
  Result<Parts> two = SplitCount(index, {"a", "b"}, Need({}, "", "", "", 2), 2);
  ASSERT_TRUE(two.ok()) << two.status().ToString();
  EXPECT_EQ(*two, (Parts{{"a", 1}, {"b", 1}}));
  // A node without a budget takes all.
  const ClusterIndex unlimited = Index({Node("a", 4, 3), Node("u", 0, 100)});
  EXPECT_EQ(*SplitCount(unlimited, {"a", "u"}, Need(), 9), (Parts{{"u", 9}}));
}

TEST(SplitCountTest, TooLittleRoomTogetherIsInsufficientResourcesSayingEachNodesRoom) {
  const ClusterIndex index = Index({Node("a", 4, 3), Node("b", 2, 0)});
  Result<Parts> parts = SplitCount(index, {"a", "b", "gone"}, Need(), 4);
  EXPECT_EQ(parts.status().code(), ErrorCode::kInsufficientResources);
  EXPECT_NE(parts.status().message().find("a 1, b 2"), std::string::npos) << parts.status().ToString();
}

}  // namespace
}  // namespace fe::engine::cluster
