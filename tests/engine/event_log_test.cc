// The event log: consecutive sequence numbers that keep growing across a reopen (kill -9 included),
// readers told when events after their cursor are gone, and waiters woken by the next event.
#include "engine/event_log.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "tests/support/file_util.h"
#include "tests/support/scratch.h"
#include "tests/support/temp_dir.h"

namespace fe::engine {
namespace {

class EventLogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Result<fe::test::TempDir> temp = fe::test::TempDir::Create();
    ASSERT_TRUE(temp.ok()) << temp.status().ToString();
    temp_.emplace(std::move(*temp));
    seq_file_ = temp_->Sub("events.seq");
  }
  std::unique_ptr<EventLog> Open(size_t capacity = 100) {
    Result<std::unique_ptr<EventLog>> log = EventLog::Open(seq_file_, SystemClock(), capacity);
    EXPECT_TRUE(log.ok()) << log.status().ToString();
    return log.ok() ? std::move(*log) : nullptr;
  }
  std::optional<fe::test::TempDir> temp_;
  std::string seq_file_;
};

nlohmann::json Parse(const std::string& line) { return nlohmann::json::parse(line); }

TEST_F(EventLogTest, EventsGetConsecutiveNumbersTheirTypeAndFields) {
  std::unique_ptr<EventLog> log = Open();
  log->Publish("instance.created", {{"name", "a"}});
  log->Publish("instance.deleted", {{"name", "a"}});
  EventLog::Batch batch = log->After(0, 10);
  EXPECT_FALSE(batch.lost);
  ASSERT_EQ(batch.lines.size(), 2u);
  EXPECT_EQ(Parse(batch.lines[0])["seq"], 1);
  EXPECT_EQ(Parse(batch.lines[0])["type"], "instance.created");
  EXPECT_EQ(Parse(batch.lines[1])["seq"], 2);
  EXPECT_EQ(Parse(batch.lines[1])["name"], "a");
  EXPECT_TRUE(Parse(batch.lines[1])["time"].is_string());
  EXPECT_EQ(batch.cursor, 2u);
  EXPECT_EQ(log->cursor(), 2u);
  EXPECT_TRUE(log->After(2, 10).lines.empty());
  EXPECT_EQ(log->After(1, 10).lines.size(), 1u);
  EXPECT_EQ(log->After(0, 1).lines.size(), 1u);  // at most `max`
}

TEST_F(EventLogTest, AReopenedLogNeverReusesANumberAndTellsOldCursorsTheyLostEvents) {
  uint64_t last = 0;
  {
    std::unique_ptr<EventLog> log = Open();
    for (int i = 0; i < 3; ++i) log->Publish("x", nlohmann::json::object());
    last = log->cursor();
  }  // as after kill -9: nothing is written at close
  std::unique_ptr<EventLog> reopened = Open();
  EXPECT_GE(reopened->cursor(), last);
  reopened->Publish("y", nlohmann::json::object());
  EventLog::Batch batch = reopened->After(last, 10);
  ASSERT_EQ(batch.lines.size(), 1u);
  const uint64_t seq = Parse(batch.lines[0])["seq"];
  EXPECT_GT(seq, last);
  // Whatever the former run issued after `last` is unknown now: the reader is told.
  EXPECT_TRUE(batch.lost);
  EXPECT_EQ(batch.first_kept, seq);
}

TEST_F(EventLogTest, AReaderBehindTheCapacityIsToldWhereTheKeptEventsStart) {
  std::unique_ptr<EventLog> log = Open(/*capacity=*/2);
  for (int i = 0; i < 5; ++i) log->Publish("x", {{"i", i}});
  EventLog::Batch batch = log->After(1, 10);
  EXPECT_TRUE(batch.lost);
  EXPECT_EQ(batch.first_kept, 4u);
  ASSERT_EQ(batch.lines.size(), 2u);
  EXPECT_EQ(Parse(batch.lines[0])["seq"], 4);
  EXPECT_FALSE(log->After(3, 10).lost);  // 4 and 5 follow 3 with nothing missing
}

TEST_F(EventLogTest, AnUnreadableSequenceFileIsRefusedNamingIt) {
  FE_ASSERT_OK(fe::test::WriteFile(seq_file_, "not a number"));
  Result<std::unique_ptr<EventLog>> log = EventLog::Open(seq_file_, SystemClock(), 10);
  ASSERT_FALSE(log.ok());
  EXPECT_NE(log.status().message().find(seq_file_), std::string::npos) << log.status().ToString();
}

TEST_F(EventLogTest, WaitersAreWokenByTheNextEventAtOnceWhenOneIsThereAndNotAfterTheirHandleIsDropped) {
  std::unique_ptr<EventLog> log = Open();
  std::atomic<int> woken{0};
  std::shared_ptr<void> waiting = log->NotifyAfter(log->cursor(), [&] { ++woken; });
  std::shared_ptr<void> dropped = log->NotifyAfter(log->cursor(), [&] { woken += 100; });
  dropped.reset();
  EXPECT_EQ(woken, 0);
  log->Publish("x", nlohmann::json::object());
  EXPECT_EQ(woken, 1);
  log->Publish("x", nlohmann::json::object());
  EXPECT_EQ(woken, 1);  // once
  std::shared_ptr<void> late = log->NotifyAfter(0, [&] { woken += 10; });
  EXPECT_EQ(woken, 11);  // an event after 0 exists already
}

TEST_F(EventLogTest, WaitAfterReturnsWhenAnEventArrivesOrFalseAtTheDeadline) {
  std::unique_ptr<EventLog> log = Open();
  const uint64_t cursor = log->cursor();
  EXPECT_FALSE(log->WaitAfter(cursor, std::chrono::steady_clock::now() + std::chrono::milliseconds(20)));
  std::thread publisher([&] { log->Publish("x", nlohmann::json::object()); });
  EXPECT_TRUE(log->WaitAfter(cursor, std::chrono::steady_clock::now() + std::chrono::minutes(5)));
  publisher.join();
}

}  // namespace
}  // namespace fe::engine
