// Watching forkd: GET /v1/events streams what happens as it happens, resumes after a sequence
// number (saying so when events were lost), and GET /v1/instances/{id}?wait_for= answers once an
// instance is in a state. Against a real forkd process.
#include <signal.h>
#include <sys/wait.h>

#include <future>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "tests/engine/forkd/forkd_test_fixture.h"

namespace fe::engine::forkd::test {
namespace {

class ForkdEventsTest : public ForkdTest {
 protected:
  // Reads GET `path` in the background until an event of type `until` arrives; the events read.
  std::future<std::vector<Json>> Watch(const std::string& path, const std::string& until) {
    return std::async(std::launch::async, [this, path, until] {
      std::vector<Json> events;
      ApiResponse response = api().Stream(path, [&](const Json& event) {
        events.push_back(event);
        return event.value("type", "") != until;
      });
      EXPECT_EQ(response.status, 200) << response.body << response.error;
      EXPECT_EQ(response.content_type, "application/x-ndjson");
      return events;
    });
  }

  // The seq of the newest event: what a reader that saw everything so far would resume after.
  uint64_t LastSeq() {
    // An event is published by every request below; the stream from 0 ends at it.
    uint64_t last = 0;
    ApiResponse marker = api().Post("/v1/instances", Json{{"name", "marker"}, {"hypervisor", "cloud-hypervisor"}});
    EXPECT_EQ(marker.status, 201) << marker.body;
    api().Stream("/v1/events?since=0", [&](const Json& event) {
      last = event.value("seq", uint64_t{0});
      return event.value("name", "") != "marker";
    });
    return last;
  }
};

std::vector<std::string> Types(const std::vector<Json>& events) {
  std::vector<std::string> types;
  for (const Json& event : events) types.push_back(event.value("type", "?"));
  return types;
}

TEST_F(ForkdEventsTest, TheStreamShowsAForksLifeInOrderWithConsecutiveSequenceNumbers) {
  StartForkd();
  std::future<std::vector<Json>> watched = Watch("/v1/events?since=0", "fork.finished");
  const Json web = Import("web");
  ApiResponse forked = api().Post("/v1/instances/web/fork", Json{{"name", "child"}, {"count", 2}});
  ASSERT_EQ(forked.status, 201) << forked.body;

  std::vector<Json> events = watched.get();
  EXPECT_EQ(Types(events), (std::vector<std::string>{"engine.started", "instance.created", "fork.started",
                                                     "instance.created", "instance.created", "fork.finished"}));
  ASSERT_EQ(events.size(), 6u);
  for (size_t i = 0; i < events.size(); ++i) EXPECT_EQ(events[i]["seq"], i + 1) << events[i].dump();
  EXPECT_EQ(events[1]["instance"], web["id"]);
  EXPECT_EQ(events[3]["parent_id"], web["id"]);
  EXPECT_EQ(events[5]["source_id"], web["id"]);
  ASSERT_EQ(events[5]["forks"].size(), 2u);
  EXPECT_GT(events[5]["forks"][0]["phases"]["total_us"].get<int64_t>(), 0);
}

TEST_F(ForkdEventsTest, AFailedForkAndADeleteAreEventsToo) {
  StartForkd();
  Import("web");
  const uint64_t after = LastSeq();
  std::future<std::vector<Json>> watched = Watch("/v1/events?since=" + std::to_string(after), "instance.deleted");
  EXPECT_EQ(StatusAndCode(api().Post("/v1/instances/nobody/fork", Json{{"name", "x"}})), "404 not_found");
  ASSERT_EQ(api().Delete("/v1/instances/web").status, 204);

  std::vector<Json> events = watched.get();
  EXPECT_EQ(Types(events), (std::vector<std::string>{"fork.started", "fork.failed", "instance.deleted"}));
  ASSERT_EQ(events.size(), 3u);
  EXPECT_EQ(events[0]["seq"], after + 1);
  EXPECT_EQ(events[1]["code"], "not_found");
  EXPECT_EQ(events[2]["name"], "web");
}

TEST_F(ForkdEventsTest, PoolsTellWhenTheyRefillAndHandOutAMember) {
  StartForkd({"--pool-tick-ms", "20", "--cpu-budget", "1000", "--busy-threshold", "1"});
  Import("template");
  const uint64_t after = LastSeq();
  std::future<std::vector<Json>> refilled = Watch("/v1/events?since=" + std::to_string(after), "pool.refilled");
  ASSERT_EQ(
      api().Post("/v1/pools", Json{{"name", "web"}, {"template", "template"}, {"min_size", 1}, {"max_size", 1}}).status,
      201);
  std::vector<Json> events = refilled.get();
  ASSERT_FALSE(events.empty());
  const Json& made = events.back();
  EXPECT_EQ(made["pool"], "web");
  // The member's own fork came first.
  EXPECT_EQ(Types(events),
            (std::vector<std::string>{"fork.started", "instance.created", "fork.finished", "pool.refilled"}));

  const uint64_t before_acquire = made["seq"];
  std::future<std::vector<Json>> acquired =
      Watch("/v1/events?since=" + std::to_string(before_acquire), "pool.acquired");
  ApiResponse acquire = api().Post("/v1/pools/web/acquire", Json{{"name", "alice"}});
  ASSERT_EQ(acquire.status, 200) << acquire.body;
  std::vector<Json> handed = acquired.get();
  ASSERT_FALSE(handed.empty());
  EXPECT_EQ(handed.back()["hit"], true);
  EXPECT_EQ(handed.back()["instance"], made["instance"]);
  EXPECT_EQ(handed.back()["name"], "alice");
}

TEST_F(ForkdEventsTest, ResumingAfterARestartSaysEventsWereLostAndGoesOnWithHigherNumbers) {
  StartForkd();
  Import("web");
  const uint64_t before_restart = LastSeq();
  forkd_->Signal(SIGTERM);
  ASSERT_EQ(forkd_->Wait(), 0) << log();
  StartForkd();

  std::vector<Json> events = Watch("/v1/events?since=" + std::to_string(before_restart), "engine.started").get();
  ASSERT_EQ(Types(events), (std::vector<std::string>{"events.lost", "engine.started"}));
  EXPECT_EQ(events[0]["after"], before_restart);
  EXPECT_EQ(events[0]["first_kept"], events[1]["seq"]);
  EXPECT_GT(events[1]["seq"].get<uint64_t>(), before_restart);
  EXPECT_EQ(events[1]["instances"], 2);  // web and the marker
}

TEST_F(ForkdEventsTest, AReaderFartherBehindThanTheKeptEventsIsToldSo) {
  StartForkd({"--events-kept", "2"});
  Import("a");
  Import("b");
  Import("c");  // events 1..4: engine.started and three instance.created; 3 and 4 are kept
  std::vector<Json> events = Watch("/v1/events?since=1", "instance.created").get();
  ASSERT_EQ(Types(events), (std::vector<std::string>{"events.lost", "instance.created"}));
  EXPECT_EQ(events[0]["after"], 1);
  EXPECT_EQ(events[0]["first_kept"], 3);
  EXPECT_EQ(events[1]["name"], "b");
}

TEST_F(ForkdEventsTest, StoppingForkdEndsAStreamWithItsLastChunk) {
  StartForkd();
  std::promise<void> open;
  std::future<ApiResponse> stream = std::async(std::launch::async, [this, &open] {
    bool first = true;
    return api().Stream("/v1/events?since=0", [&](const Json&) {
      if (std::exchange(first, false)) open.set_value();  // engine.started: the stream is open
      return true;
    });
  });
  ASSERT_EQ(open.get_future().wait_for(std::chrono::seconds(60)), std::future_status::ready);
  forkd_->Signal(SIGTERM);
  ApiResponse ended = stream.get();
  EXPECT_EQ(ended.status, 200);
  EXPECT_EQ(ended.error, "") << "the stream was cut instead of ended";
  EXPECT_EQ(forkd_->Wait(), 0) << log();
}

TEST_F(ForkdEventsTest, WaitForAnswersAtOnceInTheStateAndTimesOutWith504Otherwise) {
  StartForkd();
  Import("web");  // Standby: the fixture holds a snapshot
  ApiResponse now = api().Get("/v1/instances/web?wait_for=Standby&timeout_ms=60000");
  EXPECT_EQ(now.status, 200) << now.body;
  EXPECT_EQ(now.json["state"], "Standby");

  ApiResponse late = api().Get("/v1/instances/web?wait_for=Running&timeout_ms=50");
  EXPECT_EQ(StatusAndCode(late), "504 timed_out");
  EXPECT_NE(late.json.value("message", "").find("is Standby, not Running"), std::string::npos) << late.body;
}

TEST_F(ForkdEventsTest, AWaitWakesWhenTheInstanceIsDeletedAndAnswers404) {
  StartForkd();
  Import("web");
  std::future<ApiResponse> waiting = std::async(
      std::launch::async, [this] { return api().Get("/v1/instances/web?wait_for=Running&timeout_ms=300000"); });
  // Give the wait time to begin (if it has not, the delete makes it 404 at once: the same answer).
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  ASSERT_EQ(api().Delete("/v1/instances/web").status, 204);
  // Woken by the delete's event, not by its five-minute timeout.
  ASSERT_EQ(waiting.wait_for(std::chrono::seconds(60)), std::future_status::ready);
  EXPECT_EQ(StatusAndCode(waiting.get()), "404 not_found");
}

TEST_F(ForkdEventsTest, BadQueryParametersAre400NamingThem) {
  StartForkd();
  Import("web");
  ApiResponse unknown = api().Get("/v1/instances/web?wiat_for=Running");
  EXPECT_EQ(StatusAndCode(unknown), "400 invalid_argument");
  EXPECT_NE(unknown.json.value("message", "").find("'wiat_for'"), std::string::npos) << unknown.body;
  EXPECT_EQ(StatusAndCode(api().Get("/v1/instances/web?wait_for=Creating")), "400 invalid_argument");
  EXPECT_EQ(StatusAndCode(api().Get("/v1/instances/web?timeout_ms=5")), "400 invalid_argument");
  EXPECT_EQ(StatusAndCode(api().Get("/v1/instances/web?wait_for=Running&timeout_ms=-1")), "400 invalid_argument");
  EXPECT_EQ(StatusAndCode(api().Get("/v1/events?since=x")), "400 invalid_argument");
  EXPECT_EQ(StatusAndCode(api().Get("/v1/events?since=1&since=2")), "400 invalid_argument");
  EXPECT_EQ(StatusAndCode(api().Get("/v1/instances/web?wait_for=%zz")), "400 invalid_argument");
}

}  // namespace
}  // namespace fe::engine::forkd::test
