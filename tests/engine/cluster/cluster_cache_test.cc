// The watch-fed index (engine/cluster/cluster_cache.h) against a real etcd: it follows puts and
// deletes as they happen, says when etcd is gone while keeping its last index, and catches up after.
#include "engine/cluster/cluster_cache.h"

#include <gtest/gtest.h>

#include <thread>

#include "tests/support/etcd_cluster.h"
#include "tests/support/temp_dir.h"

namespace fe::engine::cluster {
namespace {

using namespace std::chrono_literals;

class ClusterCacheTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Result<test::TempDir> temp = test::TempDir::Create();
    ASSERT_TRUE(temp.ok()) << temp.status().ToString();
    temp_.emplace(std::move(*temp));
    Result<std::unique_ptr<test::EtcdCluster>> etcd = test::EtcdCluster::Start(temp_->path(), 1);
    if (!etcd.ok() && etcd.status().code() == ErrorCode::kUnsupported) GTEST_SKIP() << etcd.status().ToString();
    ASSERT_TRUE(etcd.ok()) << etcd.status().ToString();
    etcd_ = std::move(*etcd);
    client_ = std::make_shared<EtcdClient>(*ParseEtcdEndpoints(etcd_->Endpoints()), 2s);
  }

  int64_t Put(const std::string& key, const std::string& value) {
    Result<int64_t> revision = client_->Put(keys_.prefix() + key, value);
    EXPECT_TRUE(revision.ok()) << revision.status().ToString();
    return revision.ok() ? *revision : 0;
  }
  static bool Eventually(const std::function<bool()>& condition, std::chrono::milliseconds timeout = 5s) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!condition()) {
      if (std::chrono::steady_clock::now() > deadline) return false;
      std::this_thread::sleep_for(20ms);
    }
    return true;
  }

  ClusterKeys keys_{"c"};
  std::optional<test::TempDir> temp_;
  std::unique_ptr<test::EtcdCluster> etcd_;
  std::shared_ptr<EtcdClient> client_;
};

TEST_F(ClusterCacheTest, TheIndexFollowsPutsAndDeletesAsTheyHappen) {
  Put("nodes/n1", R"({"name":"n1","api":"127.0.0.1:1","cpu":{"budget_vcpus":8,"used_vcpus":2}})");
  Put("instances/i-1", R"({"node":"n1","name":"web"})");
  ClusterCache cache(client_, keys_, 300ms);
  cache.Start();
  ASSERT_TRUE(Eventually([&] { return cache.Synced(); }));
  EXPECT_EQ(cache.Snapshot()->Node("n1")->cpu_used_vcpus, 2);
  EXPECT_EQ(cache.Snapshot()->OwnerOf("web"), "n1") << "a name finds its instance";

  // Changes after the first read arrive through the watch, also after idle periods (300 ms here).
  std::this_thread::sleep_for(700ms);
  const int64_t revision = Put("templates/n1/i-1", R"({"id":"i-1","name":"web","hypervisor":"qemu"})");
  ASSERT_TRUE(cache.WaitForRevision(revision, 5s));
  ASSERT_EQ(cache.Snapshot()->templates.size(), 1u);
  EXPECT_EQ(cache.Snapshot()->templates[0].hypervisor, "qemu");

  Result<int64_t> deleted = client_->Delete(keys_.Node("n1"));
  ASSERT_TRUE(deleted.ok());
  ASSERT_TRUE(Eventually([&] { return cache.Snapshot()->nodes.empty(); }));
  EXPECT_TRUE(cache.Snapshot()->templates.empty()) << "a dead node's templates are no candidates";
  EXPECT_EQ(cache.Snapshot()->OwnerOf("i-1"), "n1") << "ownership outlives the node";
}

TEST_F(ClusterCacheTest, WithEtcdGoneTheIndexIsNotSyncedKeepsWhatItKnewAndCatchesUpAfter) {
  Put("nodes/n1", R"({"name":"n1","api":"127.0.0.1:1"})");
  ClusterCache cache(client_, keys_, 300ms);
  cache.Start();
  ASSERT_TRUE(Eventually([&] { return cache.Synced(); }));
  etcd_->Kill(0);
  EXPECT_TRUE(Eventually([&] { return !cache.Synced(); })) << "a dead etcd must show within the idle time";
  EXPECT_NE(cache.Snapshot()->Node("n1"), nullptr);
  ASSERT_TRUE(etcd_->Restart(0).ok());
  const int64_t revision = Put("nodes/n2", R"({"name":"n2","api":"127.0.0.1:2"})");
  EXPECT_TRUE(cache.WaitForRevision(revision, 5s));
  EXPECT_TRUE(Eventually([&] { return cache.Synced(); }));
  EXPECT_NE(cache.Snapshot()->Node("n2"), nullptr);
}

TEST(ClusterIndexTest, AValueThatDoesNotParseIsLeftOutAndADeadNodesPoolsAreNoCandidates) {
  const ClusterKeys keys("c");
  const ClusterIndex index =
      IndexFromEntries(keys, {{keys.Node("n1"), R"({"name":"n1","api":"h:1","draining":true})"},
                              {keys.Node("bad"), "{not json"},
                              {keys.Pools("n1") + "p", R"({"name":"p","template":"i-1","ready":2})"},
                              {keys.Pools("n9") + "p", R"({"name":"p","template":"i-1","ready":5})"}});
  ASSERT_EQ(index.nodes.size(), 1u);
  EXPECT_TRUE(index.Node("n1")->draining);
  ASSERT_EQ(index.pools.size(), 1u);
  EXPECT_EQ(index.pools[0].node, "n1");
  EXPECT_EQ(index.pools[0].ready, 2);
  const std::vector<nlohmann::json> view = NodesView(index);
  ASSERT_EQ(view.size(), 1u);
  EXPECT_EQ(view[0]["pools"], 1);
  EXPECT_EQ(view[0]["templates"], 0);
}

}  // namespace
}  // namespace fe::engine::cluster
