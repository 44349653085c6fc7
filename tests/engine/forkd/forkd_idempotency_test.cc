// Retry-safe requests against a real forkd: an Idempotency-Key makes a retry answer the first reply
// (engine/forkd/idempotency_store.h), across restarts, and an attempt a crash cut is undone.
#include <atomic>
#include <fstream>
#include <iostream>
#include <thread>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "tests/engine/forkd/forkd_invariants.h"
#include "tests/engine/forkd/forkd_test_fixture.h"

namespace fe::engine::forkd::test {
namespace {

class ForkdIdempotencyTest : public ForkdTest {};

TEST_F(ForkdIdempotencyTest, ARetryWithTheKeyAnswersTheFirstForkAgainAndMakesNothingMore) {
  StartForkd();
  Import("web");
  const Json body{{"name", "child"}, {"count", 3}};
  ApiResponse first = api().Post("/v1/instances/web/fork", body, "retry-1");
  ASSERT_EQ(first.status, 201) << first.body;
  EXPECT_EQ(first.replayed, "");
  ApiResponse retry = api().Post("/v1/instances/web/fork", body, "retry-1");
  EXPECT_EQ(retry.status, 201) << retry.body;
  EXPECT_EQ(retry.body, first.body);
  EXPECT_EQ(retry.replayed, "true");
  EXPECT_EQ(ExpectOnlyCompleteInstances(api(), data_root_).size(), 4u);  // web and child-1..3

  // Without the key the same body runs again, and the names are taken.
  EXPECT_EQ(StatusAndCode(api().Post("/v1/instances/web/fork", body)), "409 already_exists");
}

TEST_F(ForkdIdempotencyTest, AnErrorIsAnsweredAgainTooAndAnotherRequestUnderTheKeyIs400) {
  StartForkd();
  Import("web");
  ApiResponse refused = api().Post("/v1/instances/nobody/fork", Json{{"name", "x"}}, "k-404");
  EXPECT_EQ(StatusAndCode(refused), "404 not_found");
  Import("nobody");  // now it exists, but the key's answer stays the first one
  ApiResponse again = api().Post("/v1/instances/nobody/fork", Json{{"name", "x"}}, "k-404");
  EXPECT_EQ(StatusAndCode(again), "404 not_found");
  EXPECT_EQ(again.replayed, "true");

  ASSERT_EQ(api().Post("/v1/instances/web/fork", Json{{"name", "a"}}, "k-other").status, 201);
  ApiResponse other = api().Post("/v1/instances/web/fork", Json{{"name", "b"}}, "k-other");
  EXPECT_EQ(StatusAndCode(other), "400 invalid_argument") << other.body;
  EXPECT_NE(other.json.value("message", "").find("'k-other'"), std::string::npos) << other.body;
  EXPECT_EQ(api().Get("/v1/instances/b").status, 404);

  ApiResponse bad_key = api().Post("/v1/instances/web/fork", Json{{"name", "c"}}, "no spaces please");
  EXPECT_EQ(StatusAndCode(bad_key), "400 invalid_argument") << bad_key.body;
  EXPECT_EQ(api().Get("/v1/instances/c").status, 404);
}

TEST_F(ForkdIdempotencyTest, TheFirstReplyIsKeptAcrossAKillMinus9) {
  StartForkd();
  Import("web");
  ApiResponse first = api().Post("/v1/instances", Json{{"name", "made"}, {"hypervisor", "cloud-hypervisor"}}, "k-c");
  ASSERT_EQ(first.status, 201) << first.body;
  forkd_.reset();  // SIGKILL
  StartForkd();
  ApiResponse retry = api().Post("/v1/instances", Json{{"name", "made"}, {"hypervisor", "cloud-hypervisor"}}, "k-c");
  EXPECT_EQ(retry.status, 201) << retry.body;
  EXPECT_EQ(retry.body, first.body);
  EXPECT_EQ(retry.replayed, "true");
}

TEST_F(ForkdIdempotencyTest, AnAttemptACrashCutIsUndoneAtTheRestartSoItsRetryRunsClean) {
  StartForkd();
  Import("web");
  // What a kill -9 between the fork's commit and its reply leaves: the fork, and the key's record
  // still pending (written before the work, with the names it asks for).
  ASSERT_EQ(api().Post("/v1/instances/web/fork", Json{{"name", "cut"}}).status, 201);
  const std::string cut_created = api().Get("/v1/instances/cut").json["created_at"];
  const std::string web_created = api().Get("/v1/instances/web").json["created_at"];
  ASSERT_LE(web_created, cut_created);
  forkd_.reset();
  const Json pending{{"key", "k-cut"},
                     {"method", "POST"},
                     {"path", "/v1/instances/web/fork"},
                     {"body", Json{{"name", "cut"}}.dump()},
                     {"names", {"cut", "web"}},  // "web" is older than the attempt: not its work
                     {"started_at", cut_created},
                     {"state", "pending"}};
  std::ofstream(data_root_ + "/requests/k-cut.json") << pending.dump() << "\n";

  StartForkd();
  EXPECT_EQ(api().Get("/v1/instances/cut").status, 404) << "the cut attempt's fork is removed";
  EXPECT_EQ(api().Get("/v1/instances/web").status, 200) << "an instance older than the attempt stays";
  ApiResponse retry = api().Post("/v1/instances/web/fork", Json{{"name", "cut"}}, "k-cut");
  EXPECT_EQ(retry.status, 201) << retry.body;
  EXPECT_EQ(retry.replayed, "");
  EXPECT_EQ(ExpectOnlyCompleteInstances(api(), data_root_).size(), 2u);
}

TEST_F(ForkdIdempotencyTest, KeyedFanOutsCutByAKillMinus9AreEachMadeExactlyOnceByTheirRetries) {
  StartForkd();
  Import("web");
  constexpr int kRequests = 16;
  static constexpr int kCount = 3;
  auto body = [](int i) { return Json{{"name", "k" + std::to_string(i)}, {"count", kCount}}; };
  auto key = [](int i) { return "key-" + std::to_string(i); };
  std::vector<ApiResponse> first(kRequests);
  std::atomic<int> answered{0};
  std::vector<std::thread> clients;
  for (int i = 0; i < kRequests; ++i) {
    clients.emplace_back([&, i] {
      first[i] = api().Post("/v1/instances/web/fork", body(i), key(i));
      ++answered;
    });
  }
  // Cut them off once the first is answered: others are then in flight, recorded pending.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (answered.load() == 0 && std::chrono::steady_clock::now() < deadline) std::this_thread::yield();
  forkd_->Signal(SIGKILL);
  forkd_->Wait();
  for (std::thread& client : clients) client.join();

  StartForkd();
  int cut = 0;
  for (int i = 0; i < kRequests; ++i) {
    SCOPED_TRACE(key(i));
    ApiResponse retry = api().Post("/v1/instances/web/fork", body(i), key(i));
    EXPECT_EQ(retry.status, 201) << retry.body;
    if (first[i].status == 201) {
      EXPECT_EQ(retry.replayed, "true");
      EXPECT_EQ(retry.body, first[i].body);
    } else {
      ++cut;
    }
  }
  RecordProperty("requests_cut_by_the_kill", cut);
  std::cout << cut << " of " << kRequests << " keyed fan-outs were cut by the kill\n";
  // Each fan-out exists exactly once: whole, made by its first attempt or by its retry.
  EXPECT_EQ(ExpectOnlyCompleteInstances(api(), data_root_).size(), 1u + kRequests * kCount);
}

}  // namespace
}  // namespace fe::engine::forkd::test
