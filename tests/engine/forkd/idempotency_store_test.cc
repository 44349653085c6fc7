// The store behind Idempotency-Key (engine/forkd/idempotency_store.h), on its own.
#include "engine/forkd/idempotency_store.h"

#include <chrono>

#include <gtest/gtest.h>

#include "tests/support/advanceable_clock.h"
#include "tests/support/scratch.h"
#include "tests/support/temp_dir.h"

namespace fe::engine::forkd {
namespace {

using namespace std::chrono_literals;

class IdempotencyStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Result<fe::test::TempDir> temp = fe::test::TempDir::Create();
    FE_ASSERT_OK(temp);
    temp_.emplace(std::move(*temp));
    Result<std::unique_ptr<IdempotencyStore>> opened = IdempotencyStore::Open(temp_->Sub("requests"), 1h, clock_);
    FE_ASSERT_OK(opened);
    store_ = std::move(*opened);
  }

  const IdempotencyStore::Request fork_{"POST", "/v1/instances/web/fork", R"({"name":"a"})"};
  fe::test::AdvanceableClock clock_;
  std::optional<fe::test::TempDir> temp_;
  std::unique_ptr<IdempotencyStore> store_;
};

TEST_F(IdempotencyStoreTest, AFinishedKeyIsReplayedAndAPendingOneIsBusy) {
  Result<IdempotencyStore::Claim> first = store_->Begin("k1", fork_, {"a"});
  FE_ASSERT_OK(first);
  EXPECT_FALSE(first->replay);
  EXPECT_EQ(store_->Begin("k1", fork_, {"a"}).status().code(), ErrorCode::kBusy);
  FE_ASSERT_OK(store_->Finish("k1", {201, "{\"forks\":[]}"}));
  Result<IdempotencyStore::Claim> retry = store_->Begin("k1", fork_, {"a"});
  FE_ASSERT_OK(retry);
  EXPECT_TRUE(retry->replay);
  EXPECT_EQ(retry->reply.status, 201);
  EXPECT_EQ(retry->reply.body, "{\"forks\":[]}");
}

TEST_F(IdempotencyStoreTest, AnotherRequestUnderAKeyIsRefusedNamingIt) {
  FE_ASSERT_OK(store_->Begin("k1", fork_, {"a"}));
  FE_ASSERT_OK(store_->Finish("k1", {201, "{}"}));
  IdempotencyStore::Request other = fork_;
  other.body = R"({"name":"b"})";
  Status refused = store_->Begin("k1", other, {"b"}).status();
  EXPECT_EQ(refused.code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(refused.message().find("'k1'"), std::string::npos) << refused.ToString();
}

TEST_F(IdempotencyStoreTest, KeysAreShortAndOfASafeAlphabet) {
  FE_EXPECT_OK(IdempotencyStore::CheckKey("0b6c1a3e-6b1f-4f1e-9c57-2f7b0c7f1d11"));
  for (const std::string& key : std::vector<std::string>{"", "../etc", "a b", "a/b", std::string(129, 'k')}) {
    EXPECT_EQ(IdempotencyStore::CheckKey(key).code(), ErrorCode::kInvalidArgument) << key;
  }
}

TEST_F(IdempotencyStoreTest, PendingRecordsAreListedUntilForgotten) {
  FE_ASSERT_OK(store_->Begin("cut", fork_, {"a", "b"}));
  Result<std::vector<IdempotencyStore::Unfinished>> unfinished = store_->ListUnfinished();
  FE_ASSERT_OK(unfinished);
  ASSERT_EQ(unfinished->size(), 1u);
  EXPECT_EQ(unfinished->front().key, "cut");
  EXPECT_EQ(unfinished->front().names, (std::vector<std::string>{"a", "b"}));
  EXPECT_FALSE(unfinished->front().started_at.empty());
  FE_ASSERT_OK(store_->Forget("cut"));
  EXPECT_TRUE(store_->ListUnfinished()->empty());
}

TEST_F(IdempotencyStoreTest, SweepRemovesFinishedRecordsOlderThanTheWindowOnly) {
  FE_ASSERT_OK(store_->Begin("old", fork_, {"a"}));
  FE_ASSERT_OK(store_->Finish("old", {201, "{}"}));
  clock_.Advance(2h);
  Result<size_t> swept = store_->Sweep();
  FE_ASSERT_OK(swept);
  EXPECT_EQ(*swept, 1u);
  FE_ASSERT_OK(store_->Begin("young", fork_, {"a"}));
  FE_ASSERT_OK(store_->Finish("young", {201, "{}"}));
  swept = store_->Sweep();
  FE_ASSERT_OK(swept);
  EXPECT_EQ(*swept, 0u);
  Result<IdempotencyStore::Claim> young = store_->Begin("young", fork_, {"a"});
  FE_ASSERT_OK(young);
  EXPECT_TRUE(young->replay);
  Result<IdempotencyStore::Claim> old = store_->Begin("old", fork_, {"a"});
  FE_ASSERT_OK(old);
  EXPECT_FALSE(old->replay) << "expired: the key is new again";
}

}  // namespace
}  // namespace fe::engine::forkd
