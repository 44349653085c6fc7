// etcd's JSON gateway client against a real etcd (tests/support/etcd_cluster.h): keys, prefixes,
// create-if-absent, leases and their expiry, and members that stop answering.
#include "engine/cluster/etcd_client.h"

#include <gtest/gtest.h>

#include <thread>

#include "tests/support/etcd_cluster.h"
#include "tests/support/temp_dir.h"

namespace fe::engine::cluster {
namespace {

using namespace std::chrono_literals;

class EtcdClientTest : public ::testing::Test {
 protected:
  void StartEtcd(int members) {
    Result<test::TempDir> temp = test::TempDir::Create();
    ASSERT_TRUE(temp.ok()) << temp.status().ToString();
    temp_.emplace(std::move(*temp));
    Result<std::unique_ptr<test::EtcdCluster>> etcd = test::EtcdCluster::Start(temp_->path(), members);
    if (!etcd.ok() && etcd.status().code() == ErrorCode::kUnsupported) GTEST_SKIP() << etcd.status().ToString();
    ASSERT_TRUE(etcd.ok()) << etcd.status().ToString();
    etcd_ = std::move(*etcd);
    Result<std::vector<EtcdEndpoint>> endpoints = ParseEtcdEndpoints(etcd_->Endpoints());
    ASSERT_TRUE(endpoints.ok()) << endpoints.status().ToString();
    client_.emplace(std::move(*endpoints), 5s);
  }

  std::optional<test::TempDir> temp_;
  std::unique_ptr<test::EtcdCluster> etcd_;
  std::optional<EtcdClient> client_;
};

TEST(EtcdEndpointsTest, ParsesAListAndNamesTheUrlThatIsNotHttpHostPort) {
  Result<std::vector<EtcdEndpoint>> parsed = ParseEtcdEndpoints("http://127.0.0.1:2379,http://10.0.0.2:12379");
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  ASSERT_EQ(parsed->size(), 2u);
  EXPECT_EQ((*parsed)[1].host, "10.0.0.2");
  EXPECT_EQ((*parsed)[1].port, 12379);
  for (const char* bad : {"", "127.0.0.1:2379", "https://h:1", "http://h:0", "http://h:2379,http://h2:x"}) {
    Result<std::vector<EtcdEndpoint>> refused = ParseEtcdEndpoints(bad);
    EXPECT_EQ(refused.status().code(), ErrorCode::kInvalidArgument) << bad;
  }
}

TEST(EtcdEndpointsTest, APrefixEndsJustAfterItsLastKey) {
  EXPECT_EQ(PrefixEnd("/a/"), "/a0");
  EXPECT_EQ(PrefixEnd(std::string("a\xff", 2)), "b");
}

TEST_F(EtcdClientTest, PutGetPrefixAndDeleteRoundTripAnyBytes) {
  ASSERT_NO_FATAL_FAILURE(StartEtcd(1));
  const std::string binary("v\0\xff\n", 4);
  ASSERT_TRUE(client_->Put("/fe/a/1", "one").ok());
  ASSERT_TRUE(client_->Put("/fe/a/2", binary).ok());
  ASSERT_TRUE(client_->Put("/fe/b/1", "other").ok());
  Result<std::optional<KeyValue>> one = client_->Get("/fe/a/1");
  ASSERT_TRUE(one.ok()) << one.status().ToString();
  ASSERT_TRUE(one->has_value());
  EXPECT_EQ((*one)->value, "one");
  EXPECT_GT((*one)->create_revision, 0);
  Result<std::vector<KeyValue>> prefix = client_->GetPrefix("/fe/a/");
  ASSERT_TRUE(prefix.ok()) << prefix.status().ToString();
  ASSERT_EQ(prefix->size(), 2u);
  EXPECT_EQ((*prefix)[1].value, binary);
  EXPECT_EQ(*client_->DeletePrefix("/fe/a/"), 2);
  EXPECT_FALSE(client_->Get("/fe/a/1")->has_value());
  EXPECT_TRUE(client_->Get("/fe/b/1")->has_value());
  EXPECT_EQ(*client_->Delete("/fe/b/1"), 1);
  EXPECT_EQ(*client_->Delete("/fe/b/1"), 0);
}

TEST_F(EtcdClientTest, CreateIfAbsentCreatesOnceAndReportsTheHolder) {
  ASSERT_NO_FATAL_FAILURE(StartEtcd(1));
  Result<bool> first = client_->CreateIfAbsent("/fe/names/web", "node-a");
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  EXPECT_TRUE(*first);
  KeyValue holder;
  Result<bool> second = client_->CreateIfAbsent("/fe/names/web", "node-b", 0, &holder);
  ASSERT_TRUE(second.ok()) << second.status().ToString();
  EXPECT_FALSE(*second);
  EXPECT_EQ(holder.value, "node-a");
  EXPECT_EQ(client_->Get("/fe/names/web")->value().value, "node-a");
}

TEST_F(EtcdClientTest, ConcurrentCreatesOfOneKeyHaveExactlyOneWinner) {
  ASSERT_NO_FATAL_FAILURE(StartEtcd(1));
  std::atomic<int> winners{0}, failures{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < 20; ++i) {
    threads.emplace_back([&, i] {
      Result<bool> created = client_->CreateIfAbsent("/fe/names/race", "claimant-" + std::to_string(i));
      if (!created.ok()) ++failures;
      if (created.ok() && *created) ++winners;
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(winners.load(), 1);
}

TEST_F(EtcdClientTest, KeysOfALeaseVanishWhenItExpiresAndKeepAliveHoldsThem) {
  ASSERT_NO_FATAL_FAILURE(StartEtcd(1));
  Result<int64_t> kept = client_->GrantLease(2s);
  Result<int64_t> dropped = client_->GrantLease(2s);
  ASSERT_TRUE(kept.ok() && dropped.ok()) << kept.status().ToString() << dropped.status().ToString();
  ASSERT_TRUE(client_->Put("/fe/nodes/kept", "x", *kept).ok());
  ASSERT_TRUE(client_->Put("/fe/nodes/dropped", "x", *dropped).ok());
  EXPECT_EQ(client_->Get("/fe/nodes/kept")->value().lease, *kept);
  for (int i = 0; i < 8; ++i) {  // 4 s: twice the TTL
    Result<int64_t> left = client_->KeepAlive(*kept);
    ASSERT_TRUE(left.ok()) << left.status().ToString();
    EXPECT_GT(*left, 0);
    std::this_thread::sleep_for(500ms);
  }
  EXPECT_TRUE(client_->Get("/fe/nodes/kept")->has_value());
  EXPECT_FALSE(client_->Get("/fe/nodes/dropped")->has_value()) << "the key outlived its lease";
  EXPECT_EQ(*client_->KeepAlive(*dropped), 0) << "an expired lease must report 0 seconds left";
  ASSERT_TRUE(client_->RevokeLease(*kept).ok());
  EXPECT_FALSE(client_->Get("/fe/nodes/kept")->has_value());
}

TEST_F(EtcdClientTest, AMemberThatStopsAnsweringIsSkippedAndNoQuorumIsUnavailable) {
  ASSERT_NO_FATAL_FAILURE(StartEtcd(3));
  ASSERT_TRUE(client_->Put("/fe/k", "1").ok());
  etcd_->Kill(0);
  Result<int64_t> with_two = client_->Put("/fe/k", "2");
  EXPECT_TRUE(with_two.ok()) << with_two.status().ToString();
  EXPECT_EQ(client_->Get("/fe/k")->value().value, "2");
  etcd_->Kill(1);
  // One member of three: no quorum. etcd answers writes with an error after its request timeout.
  Result<int64_t> alone = client_->Put("/fe/k", "3");
  EXPECT_EQ(alone.status().code(), ErrorCode::kUnavailable) << alone.status().ToString();
}

}  // namespace
}  // namespace fe::engine::cluster
