// What happened, in order: instances created, changing state and deleted; forks started, finished
// (with their phases) and failed; pools refilled, backing off and handing out members. It is what
// GET /v1/events streams and what GET /v1/instances/{id}?wait_for= waits on.
//
// Each event is one JSON object {"seq", "time", "type", ...fields}, serialised once when published.
// Sequence numbers grow by one per event and keep growing across restarts: the log reserves them in
// blocks, durably, in a small file before handing them out, so a number is never issued twice even
// after kill -9 (a restart skips the rest of the last block). Events themselves live in memory only:
// the last `capacity` are kept. A reader resuming after a cursor older than the oldest kept event
// (evicted, or from before a restart) is told that events were lost (Batch::lost), so it re-lists
// instead of silently missing a change.
//
// Threads: every method may be called concurrently. Publish never fails: an event is part of no
// operation's outcome (a reservation that cannot be written is logged and retried at the next event).
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "base/clock.h"
#include "base/status.h"

namespace fe::engine {

class EventLog {
 public:
  // Continues the sequence reserved in `seq_file` (made when missing); keeps the last `capacity`
  // events.
  static Result<std::unique_ptr<EventLog>> Open(std::string seq_file, const Clock& clock, size_t capacity);

  // Appends {"seq", "time", "type": type, ...fields} and wakes the waiters. `fields` is an object.
  void Publish(std::string_view type, nlohmann::json fields);

  // The seq of the newest event (of this run or, before any, the last one a former run may have
  // issued): a cursor that means "from now on".
  uint64_t cursor() const;

  struct Batch {
    std::vector<std::string> lines;  // events after the cursor, oldest first, each one JSON object
    uint64_t cursor = 0;             // the seq of the last event in `lines` (the given cursor when none)
    // Events after the given cursor are no longer kept: `lines` starts at first_kept, not cursor + 1.
    bool lost = false;
    uint64_t first_kept = 0;
  };
  // At most `max` events with a seq above `cursor`.
  Batch After(uint64_t cursor, size_t max) const;

  // Calls `wake` once, on the publishing thread (or this one, when an event after `cursor` exists
  // already), when there is an event after `cursor`. Dropping the returned handle cancels the call.
  // `wake` must be quick and must not call into the log.
  std::shared_ptr<void> NotifyAfter(uint64_t cursor, std::function<void()> wake);

  // Blocks until an event after `cursor` exists or `deadline` passes; whether one exists.
  bool WaitAfter(uint64_t cursor, std::chrono::steady_clock::time_point deadline) const;

  // How many seqs a reservation covers: a restart skips at most this many.
  static constexpr uint64_t kReservationBlock = 4096;

 private:
  struct Event {
    uint64_t seq;
    std::string line;
  };
  struct Waiter {
    uint64_t cursor;
    std::function<void()> wake;
  };
  EventLog(std::string seq_file, const Clock& clock, size_t capacity, uint64_t reserved);
  // Makes sure seq `seq` is reserved; REQUIRES mutex_.
  void ReserveThrough(uint64_t seq);

  const std::string seq_file_;
  const Clock& clock_;
  const size_t capacity_;
  mutable std::mutex mutex_;
  mutable std::condition_variable published_;
  std::deque<Event> events_;                    // GUARDED_BY(mutex_)
  uint64_t last_seq_;                           // GUARDED_BY(mutex_)
  uint64_t reserved_;                           // GUARDED_BY(mutex_): seqs up to this one are reserved
  std::vector<std::weak_ptr<Waiter>> waiters_;  // GUARDED_BY(mutex_)
};

}  // namespace fe::engine
