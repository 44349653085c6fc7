// forkd killed in the middle of forks: kill -9 then a restart recovers to only complete instances
// with the source intact; SIGTERM lets the forks in flight finish and exits 0 with nothing to recover.
#include <signal.h>
#include <sys/wait.h>

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

#include "tests/engine/forkd/forkd_invariants.h"
#include "tests/engine/forkd/forkd_test_fixture.h"

namespace fe::engine::forkd::test {
namespace {

class ForkdCrashTest : public ForkdTest {
 protected:
  // Starts `clients` threads each forking `source` with count `count`; returns once forks are
  // visibly under way (more instance directories than before), or once every request has answered.
  void StartForking(const std::string& source, int clients, int count) {
    size_t before = ListDir(data_root_ + "/instances").size();
    done_ = 0;
    responses_.assign(clients, ApiResponse{});
    for (int c = 0; c < clients; ++c) {
      threads_.emplace_back([this, source, c, count] {
        std::string name = "c";  // appended: GCC 12 -O3 warns falsely (-Wrestrict) on "c" + std::to_string(c)
        name.append(std::to_string(c));
        responses_[c] = api().Post("/v1/instances/" + source + "/fork", Json{{"name", name}, {"count", count}});
        ++done_;
      });
    }
    while (ListDir(data_root_ + "/instances").size() <= before && done_.load() < clients) std::this_thread::yield();
  }

  // Instances whose final metadata is on disk (made, whether or not published), the source aside.
  size_t CommittedForks() {
    size_t committed = 0;
    for (const std::string& id : ListDir(data_root_ + "/instances")) {
      Result<std::string> text = fe::test::ReadFile(data_root_ + "/instances/" + id + "/instance.json");
      if (text.ok() && text->find("\"parent_id\": \"i-") != std::string::npos &&
          text->find("\"state\": \"Creating\"") == std::string::npos) {
        ++committed;
      }
    }
    return committed;
  }

  void JoinForking() {
    for (std::thread& thread : threads_) thread.join();
    threads_.clear();
  }

  std::vector<std::thread> threads_;
  std::vector<ApiResponse> responses_;
  std::atomic<int> done_{0};
};

TEST_F(ForkdCrashTest, KillNineDuringForksThenRestartLeavesOnlyCompleteInstancesAndAnIntactSource) {
  StartForkd();
  Json source = Import("src");
  ASSERT_TRUE(source.is_object());
  std::string source_volume = data_root_ + "/volumes/" + source["storage"]["volume"].get<std::string>();
  Result<std::map<std::string, fe::test::Digest>> before = TreeDigests(source_volume);
  FE_ASSERT_OK(before);

  StartForking("src", 3, 20);
  forkd_->Signal(SIGKILL);
  int status = forkd_->Wait();
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << status;
  JoinForking();

  StartForkd();  // over the stale socket the killed daemon left
  std::set<std::string> ids = ExpectOnlyCompleteInstances(api(), data_root_);
  EXPECT_TRUE(ids.count(source["id"]) == 1) << "the source survives";
  Result<std::map<std::string, fe::test::Digest>> after = TreeDigests(source_volume);
  FE_ASSERT_OK(after);
  EXPECT_EQ(*after, *before) << "a fork wrote into its source";
  EXPECT_NE(log().find("recovery report:"), std::string::npos) << log();
  // The restarted daemon works: it forks the source again.
  EXPECT_EQ(api().Post("/v1/instances/src/fork", Json{{"name", "after-restart"}}).status, 201);
}

TEST_F(ForkdCrashTest, KillNineWhileSnapshottingLeavesWholeSnapshotsOnlyAndTheirInstanceIntact) {
  StartForkd();
  Json source = Import("src");
  ASSERT_TRUE(source.is_object());
  const std::string source_volume = data_root_ + "/volumes/" + source["storage"]["volume"].get<std::string>();
  Result<std::map<std::string, fe::test::Digest>> before = TreeDigests(source_volume);
  FE_ASSERT_OK(before);
  std::atomic<bool> stop{false};
  std::atomic<int> taken{0};
  std::vector<std::thread> clients;
  for (int c = 0; c < 3; ++c) {
    clients.emplace_back([&, c] {
      for (int i = 0; !stop && i < 200; ++i) {
        const ApiResponse reply = api().Post("/v1/instances/src/snapshots",
                                             Json{{"name", "c" + std::to_string(c) + "-" + std::to_string(i)}});
        if (reply.status == 201) ++taken;
        if (reply.status == 0) return;  // forkd is gone
      }
    });
  }
  while (taken.load() < 4) std::this_thread::yield();
  forkd_->Signal(SIGKILL);
  forkd_->Wait();
  stop = true;
  for (std::thread& client : clients) client.join();

  StartForkd();
  ExpectOnlyCompleteInstances(api(), data_root_);
  const ApiResponse listed = api().Get("/v1/snapshots");
  ASSERT_EQ(listed.status, 200);
  EXPECT_GE(listed.json["snapshots"].size(), 4u) << "every answered snapshot survives";
  Result<std::map<std::string, fe::test::Digest>> after = TreeDigests(source_volume);
  FE_ASSERT_OK(after);
  EXPECT_EQ(*after, *before) << "a snapshot wrote into its instance";
  const std::string first = listed.json["snapshots"][0]["id"];
  EXPECT_EQ(api().Post("/v1/snapshots/" + first + "/fork", Json{{"name", "after-restart"}}).status, 201);
}

TEST_F(ForkdCrashTest, KillNineDuringFanOutsLeavesEachFanOutWholeOrGone) {
  StartForkd();
  ASSERT_TRUE(Import("src").is_object());
  for (int round = 0; round < 3; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    StartForking("src", 3, 10);
    // Cut the fan-outs off once members are made (final metadata on disk) but none is answered.
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (CommittedForks() < static_cast<size_t>(1 + round * 4) && done_.load() == 0 &&
           std::chrono::steady_clock::now() < deadline) {
      std::this_thread::yield();
    }
    forkd_->Signal(SIGKILL);
    forkd_->Wait();
    JoinForking();
    StartForkd();
    ExpectOnlyCompleteInstances(api(), data_root_);
    ApiResponse list = api().Get("/v1/instances");
    ASSERT_EQ(list.status, 200);
    for (int c = 0; c < 3; ++c) {
      // Appended, not "c" + to_string(c): GCC 12 warns falsely (-Wrestrict) on that at -O3.
      std::string prefix = std::to_string(c);
      prefix.insert(0, 1, 'c').push_back('-');
      int members = 0;
      for (const Json& instance : list.json["instances"]) {
        if (instance["name"].get<std::string>().rfind(prefix, 0) == 0) ++members;
      }
      EXPECT_TRUE(members == 0 || members == 10) << prefix << "*: " << members << " of 10 survived";
      if (responses_[c].status == 201) {
        EXPECT_EQ(members, 10) << "an answered fan-out lost members";
      }
      // The next round reuses the names.
      for (const Json& instance : list.json["instances"]) {
        if (instance["name"].get<std::string>().rfind(prefix, 0) == 0) {
          EXPECT_EQ(api().Delete("/v1/instances/" + instance["id"].get<std::string>()).status, 204);
        }
      }
    }
  }
}

TEST_F(ForkdCrashTest, SigtermDuringForksLetsThemFinishExitsZeroAndLeavesNothingToRecover) {
  StartForkd();
  Json source = Import("src");
  ASSERT_TRUE(source.is_object());
  StartForking("src", 4, 10);
  forkd_->Signal(SIGTERM);
  int status = forkd_->Wait();
  JoinForking();
  ASSERT_TRUE(WIFEXITED(status)) << status << "\n" << log();
  EXPECT_EQ(WEXITSTATUS(status), 0) << log();
  EXPECT_NE(log().find("forkd stopped"), std::string::npos) << log();

  std::string first_log = log();
  StartForkd();
  std::set<std::string> ids = ExpectOnlyCompleteInstances(api(), data_root_);
  for (const ApiResponse& response : responses_) {
    if (response.status != 201) continue;  // refused or cut off: must have left nothing (checked above)
    for (const Json& fork : response.json["forks"]) EXPECT_EQ(ids.count(fork["instance"]["id"]), 1u);
  }
  std::string restart_log = log().substr(first_log.size());
  EXPECT_NE(restart_log.find("recovery report: 0 action(s)"), std::string::npos) << restart_log;
}

}  // namespace
}  // namespace fe::engine::forkd::test
