// What watches the engine: GET /v1/events streams its event log (engine/event_log.h) as
// newline-delimited JSON, and GET /v1/instances/{id}?wait_for= answers once an instance reaches a
// state. Both wait on the log rather than polling the engine.
#include <algorithm>
#include <charconv>
#include <chrono>
#include <optional>

#include "engine/forkd/memory_view.h"
#include "engine/forkd/replies.h"
#include "engine/forkd/request_parsing.h"
#include "engine/forkd/server.h"

namespace fe::engine::forkd {
namespace {

using Json = nlohmann::json;
using SteadyClock = std::chrono::steady_clock;

constexpr size_t kEventsPerChunk = 256;
constexpr int64_t kDefaultWaitMs = 30'000;
constexpr int64_t kMaxWaitMs = 300'000;
// Each wait holds a worker thread (HttpServerOptions::worker_threads): at most this many at once, so
// waits cannot take the workers forks need.
constexpr int kMaxConcurrentWaits = 16;
// How often a wait looks at ApiServer::Stop.
constexpr std::chrono::milliseconds kStopCheck{100};

// The log from a cursor on, as chunks of lines; an events.lost line first when events after the
// cursor are no longer kept (a restart, or a reader slower than the log's capacity).
class EventStream final : public ResponseStream {
 public:
  EventStream(EventLog& log, uint64_t cursor) : log_(log), cursor_(cursor) {}

  std::string Take(bool* finished) override {
    *finished = false;
    EventLog::Batch batch = log_.After(cursor_, kEventsPerChunk);
    std::string text;
    if (batch.lost) {
      // Its seq is the last one lost, so a reader that records it resumes right after the gap.
      text += nlohmann::ordered_json{{"seq", batch.first_kept - 1},
                                     {"time", SystemClock().WallNowRfc3339()},
                                     {"type", "events.lost"},
                                     {"after", cursor_},
                                     {"first_kept", batch.first_kept}}
                  .dump();
      text += '\n';
    }
    for (const std::string& line : batch.lines) {
      text += line;
      text += '\n';
    }
    cursor_ = batch.cursor;
    return text;
  }

  std::shared_ptr<void> OnReady(std::function<void()> ready) override {
    return log_.NotifyAfter(cursor_, std::move(ready));
  }

 private:
  EventLog& log_;
  uint64_t cursor_;
};

// One instance's view: with what its process holds in memory (memory_view.h).
Reply InstanceFound(const Result<Instance>& instance, const std::string& named) {
  Reply reply = instance.ok() ? JsonReply(200, InstanceViewWithMemory(*instance)) : ErrorReply(instance.status());
  reply.instance = instance.ok() ? instance->id : named;
  return reply;
}

}  // namespace

Reply ApiServer::Events(const Params&, const Query& query, std::string_view) {
  EventLog& log = engine_.events();
  uint64_t cursor = log.cursor();  // no `since`: from now on
  if (std::optional<std::string> since = QueryValue(query, "since")) {
    Result<uint64_t> parsed = QueryNumber(*since, "since", UINT64_MAX - 1);
    if (!parsed.ok()) return ErrorReply(parsed.status());
    cursor = *parsed;
  }
  Reply reply;
  reply.content_type = "application/x-ndjson";
  reply.stream = std::make_shared<EventStream>(log, cursor);
  return reply;
}

Reply ApiServer::GetInstance(const Params& params, const Query& query, std::string_view) {
  const std::string& named = params[0];
  std::optional<std::string> wait_for = QueryValue(query, "wait_for");
  std::optional<std::string> timeout = QueryValue(query, "timeout_ms");
  if (!wait_for) {
    if (timeout) return ErrorReply(Status::InvalidArgument("query parameter 'timeout_ms' needs 'wait_for'"));
    return InstanceFound(engine_.Get(named), named);
  }
  Result<InstanceState> wanted = ParseRequestedState(*wait_for);
  if (!wanted.ok()) return ErrorReply(wanted.status().Annotate("query parameter 'wait_for'"));
  uint64_t timeout_ms = kDefaultWaitMs;
  if (timeout) {
    Result<uint64_t> parsed = QueryNumber(*timeout, "timeout_ms", kMaxWaitMs);
    if (!parsed.ok()) return ErrorReply(parsed.status());
    timeout_ms = *parsed;
  }
  if (waits_.fetch_add(1) >= kMaxConcurrentWaits) {
    --waits_;
    return ErrorReply(Status::Unavailable(std::to_string(kMaxConcurrentWaits) +
                                          " requests wait for states already: retry later, or watch GET /v1/events"));
  }
  struct Leave {
    std::atomic<int>& waits;
    ~Leave() { --waits; }
  } leave{waits_};

  const auto deadline = SteadyClock::now() + std::chrono::milliseconds(timeout_ms);
  while (true) {
    // The cursor before the read: a change after the read is an event after the cursor.
    const uint64_t cursor = engine_.events().cursor();
    Result<Instance> instance = engine_.Get(named);
    if (!instance.ok() || instance->state == *wanted) return InstanceFound(instance, named);
    if (SteadyClock::now() >= deadline) {
      Reply reply = ErrorReply(Status::TimedOut("instance '" + instance->name + "' is " +
                                                std::string(InstanceStateName(instance->state)) + ", not " + *wait_for +
                                                ", after " + std::to_string(timeout_ms) + " ms"));
      reply.instance = instance->id;
      return reply;
    }
    if (stopping_) return ErrorReply(Status::Unavailable("forkd is stopping: wait again after it restarts"));
    engine_.events().WaitAfter(cursor, std::min(deadline, SteadyClock::now() + kStopCheck));
  }
}

}  // namespace fe::engine::forkd
