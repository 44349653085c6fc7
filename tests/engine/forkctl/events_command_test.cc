// `forkctl events` renders each event as one line a person can follow.
#include "engine/forkctl/events_command.h"

#include <gtest/gtest.h>

namespace fe::engine::forkctl {
namespace {

using nlohmann::json;

TEST(EventLineTest, AFinishedForkShowsEachForkWithItsPhasesInMilliseconds) {
  const json event{{"seq", 12},
                   {"time", "2026-12-05T23:39:36.879Z"},
                   {"type", "fork.finished"},
                   {"forks",
                    {{{"name", "b"},
                      {"instance", "i-1"},
                      {"state", "Running"},
                      {"mechanism", "reflink"},
                      {"phases", {{"total_us", 2500}, {"clone_us", 1000}, {"rewrite_us", 500}}}}}}};
  const std::string line = EventLine(event);
  EXPECT_EQ(line.substr(0, 20), "    12 23:39:36.879 ");
  EXPECT_NE(line.find("fork.finished"), std::string::npos) << line;
  EXPECT_NE(line.find("b (i-1) Running in 2.500 ms: clone 1.000 ms, rewrite 0.500 ms"), std::string::npos) << line;
  EXPECT_EQ(line.back(), '\n');
}

TEST(EventLineTest, StateChangesAndFailuresSayWhatHappened) {
  EXPECT_NE(EventLine({{"seq", 1},
                       {"type", "instance.state_changed"},
                       {"name", "a"},
                       {"instance", "i-1"},
                       {"from", "Standby"},
                       {"to", "Running"}})
                .find("a (i-1) Standby -> Running"),
            std::string::npos);
  EXPECT_NE(EventLine({{"seq", 2},
                       {"type", "fork.failed"},
                       {"name", "x"},
                       {"source", "t"},
                       {"message", "no room"},
                       {"code", "no_space"}})
                .find("'x' of t: no room (no_space)"),
            std::string::npos);
}

TEST(EventLineTest, AnUnknownTypeShowsItsFieldsAsKeyValue) {
  const std::string line = EventLine({{"seq", 3}, {"type", "pool.future"}, {"pool", "p"}, {"n", 2}});
  EXPECT_NE(line.find("pool.future"), std::string::npos) << line;
  EXPECT_NE(line.find("n=2 pool=p"), std::string::npos) << line;
}

}  // namespace
}  // namespace fe::engine::forkctl
