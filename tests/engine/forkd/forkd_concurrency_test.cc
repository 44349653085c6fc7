// Concurrency through the API: many forks of one source at once, and a delete racing forks.
#include <unistd.h>

#include <atomic>
#include <set>
#include <thread>
#include <vector>

#include "tests/engine/forkd/forkd_invariants.h"
#include "tests/engine/forkd/forkd_test_fixture.h"

namespace fe::engine::forkd::test {
namespace {

class ForkdConcurrencyTest : public ForkdTest {};

TEST_F(ForkdConcurrencyTest, FiftyConcurrentForksOfOneSourceAllSucceedWithDistinctIdentities) {
  StartForkd();
  Json source = Import("template");
  ASSERT_TRUE(source.is_object());
  constexpr int kForks = 50;
  std::vector<ApiResponse> responses(kForks);
  std::vector<std::thread> clients;
  std::atomic<bool> go{false};
  for (int i = 0; i < kForks; ++i) {
    clients.emplace_back([&, i] {
      while (!go) std::this_thread::yield();
      responses[i] = api().Post("/v1/instances/template/fork", Json{{"name", "fork-" + std::to_string(i)}});
    });
  }
  go = true;
  for (std::thread& client : clients) client.join();

  std::set<std::string> ids, ips, macs, taps, cids, names;
  ips.insert(source["identity"]["ipv4"]);
  macs.insert(source["identity"]["mac"]);
  taps.insert(source["identity"]["tap_device"]);
  cids.insert(source["identity"]["vsock_cid"].dump());
  for (int i = 0; i < kForks; ++i) {
    ASSERT_EQ(responses[i].status, 201) << i << ": " << responses[i].body << responses[i].error;
    const Json& fork = responses[i].json["forks"][0]["instance"];
    EXPECT_EQ(fork["name"], "fork-" + std::to_string(i));
    EXPECT_EQ(fork["parent_id"], source["id"]);
    ids.insert(fork["id"]);
    ips.insert(fork["identity"]["ipv4"]);
    macs.insert(fork["identity"]["mac"]);
    taps.insert(fork["identity"]["tap_device"]);
    cids.insert(fork["identity"]["vsock_cid"].dump());
  }
  EXPECT_EQ(ids.size(), size_t{kForks});
  EXPECT_EQ(ips.size(), size_t{kForks + 1});
  EXPECT_EQ(macs.size(), size_t{kForks + 1});
  EXPECT_EQ(taps.size(), size_t{kForks + 1});
  EXPECT_EQ(cids.size(), size_t{kForks + 1});
  std::set<std::string> listed = ExpectOnlyCompleteInstances(api(), data_root_);
  EXPECT_EQ(listed.size(), size_t{kForks + 1});
}

// Forkers keep forking the source while a delete of the source lands in the middle. Each fork either
// happens completely (201) or not at all (404 once the source is gone, 409 while it is locked); the
// delete succeeds; afterwards everything listed is whole and nothing unlisted is left on disk.
TEST_F(ForkdConcurrencyTest, ADeleteRacingForksNeverLeavesABrokenInstance) {
  StartForkd();
  Json source = Import("src");
  ASSERT_TRUE(source.is_object());
  constexpr int kForkers = 8;
  constexpr int kForksEach = 4;
  std::atomic<int> made{0};
  std::vector<std::vector<ApiResponse>> responses(kForkers);
  std::vector<std::thread> threads;
  for (int t = 0; t < kForkers; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kForksEach; ++i) {
        ApiResponse response =
            api().Post("/v1/instances/src/fork", Json{{"name", "r-" + std::to_string(t) + "-" + std::to_string(i)}});
        if (response.status == 201) ++made;
        responses[t].push_back(std::move(response));
      }
    });
  }
  ApiResponse deleted;
  threads.emplace_back([&] {
    while (made.load() < 2) std::this_thread::yield();  // delete once forks are under way
    deleted = api().Delete("/v1/instances/src");
  });
  for (std::thread& thread : threads) thread.join();

  EXPECT_EQ(deleted.status, 204) << deleted.body << deleted.error;
  std::set<std::string> forked;
  for (const auto& list : responses) {
    for (const ApiResponse& response : list) {
      if (response.status == 201) {
        forked.insert(response.json["forks"][0]["instance"]["id"]);
      } else {
        EXPECT_TRUE(response.status == 404 || response.status == 409)
            << StatusAndCode(response) << ": " << response.body;
      }
    }
  }
  EXPECT_EQ(StatusAndCode(api().Get("/v1/instances/src")), "404 not_found");
  std::set<std::string> listed = ExpectOnlyCompleteInstances(api(), data_root_);
  EXPECT_EQ(listed, forked);
}

}  // namespace
}  // namespace fe::engine::forkd::test
