#include "engine/event_log.h"

#include <spdlog/spdlog.h>

#include <charconv>

#include "base/atomic_file.h"

namespace fe::engine {

Result<std::unique_ptr<EventLog>> EventLog::Open(std::string seq_file, const Clock& clock, size_t capacity) {
  uint64_t reserved = 0;
  Result<bool> exists = IsRegularFile(seq_file);
  if (!exists.ok()) return exists.status();
  if (*exists) {
    FE_ASSIGN_OR_RETURN(std::string content, ReadSmallFile(seq_file, 64));
    while (!content.empty() && (content.back() == '\n' || content.back() == ' ')) content.pop_back();
    const auto [end, error] = std::from_chars(content.data(), content.data() + content.size(), reserved);
    if (error != std::errc() || end != content.data() + content.size()) {
      return Status::InvalidArgument("event sequence file " + seq_file + " does not hold a number: '" + content + "'");
    }
  }
  return std::unique_ptr<EventLog>(new EventLog(std::move(seq_file), clock, std::max<size_t>(capacity, 1), reserved));
}

// Every seq up to `reserved` may have been issued by a former run: this run starts after it.
EventLog::EventLog(std::string seq_file, const Clock& clock, size_t capacity, uint64_t reserved)
    : seq_file_(std::move(seq_file)), clock_(clock), capacity_(capacity), last_seq_(reserved), reserved_(reserved) {}

void EventLog::ReserveThrough(uint64_t seq) {
  if (seq <= reserved_) return;
  const uint64_t next = seq + kReservationBlock - 1;
  if (Status written = ReplaceFileDurably(seq_file_, std::to_string(next) + "\n", 0600); !written.ok()) {
    // Issuing on is better than losing the event; only a crash before the next reservation succeeds
    // could then see a seq again.
    spdlog::warn("events: reserving sequence numbers: {}", written.ToString());
    return;
  }
  reserved_ = next;
}

void EventLog::Publish(std::string_view type, nlohmann::json fields) {
  std::vector<std::function<void()>> to_wake;
  {
    std::lock_guard lock(mutex_);
    const uint64_t seq = last_seq_ + 1;
    ReserveThrough(seq);
    // seq, time and type first, for whoever reads the stream by eye.
    nlohmann::ordered_json event{{"seq", seq}, {"time", clock_.WallNowRfc3339()}, {"type", type}};
    if (fields.is_object()) {
      for (auto& [key, value] : fields.items()) event[key] = std::move(value);
    }
    events_.push_back({seq, event.dump()});
    if (events_.size() > capacity_) events_.pop_front();
    last_seq_ = seq;
    std::vector<std::weak_ptr<Waiter>> waiting;
    for (std::weak_ptr<Waiter>& weak : waiters_) {
      std::shared_ptr<Waiter> waiter = weak.lock();
      if (!waiter) continue;
      if (waiter->cursor < seq) {
        to_wake.push_back(std::move(waiter->wake));
      } else {
        waiting.push_back(std::move(weak));
      }
    }
    waiters_ = std::move(waiting);
  }
  published_.notify_all();
  for (std::function<void()>& wake : to_wake) wake();
}

uint64_t EventLog::cursor() const {
  std::lock_guard lock(mutex_);
  return last_seq_;
}

EventLog::Batch EventLog::After(uint64_t cursor, size_t max) const {
  std::lock_guard lock(mutex_);
  Batch batch;
  batch.cursor = cursor;
  const uint64_t first_kept = events_.empty() ? last_seq_ + 1 : events_.front().seq;
  if (cursor + 1 < first_kept) {
    batch.lost = true;
    batch.first_kept = first_kept;
    batch.cursor = first_kept - 1;
  }
  if (events_.empty() || batch.cursor >= last_seq_) return batch;
  // Seqs are consecutive in the deque: the first one after the cursor is at a known index.
  size_t index = static_cast<size_t>(batch.cursor + 1 - events_.front().seq);
  for (; index < events_.size() && batch.lines.size() < max; ++index) {
    batch.lines.push_back(events_[index].line);
    batch.cursor = events_[index].seq;
  }
  return batch;
}

std::shared_ptr<void> EventLog::NotifyAfter(uint64_t cursor, std::function<void()> wake) {
  auto waiter = std::make_shared<Waiter>(Waiter{cursor, std::move(wake)});
  {
    std::lock_guard lock(mutex_);
    if (last_seq_ <= cursor) {
      std::erase_if(waiters_, [](const std::weak_ptr<Waiter>& weak) { return weak.expired(); });
      waiters_.push_back(waiter);
      return waiter;
    }
  }
  waiter->wake();
  return waiter;
}

bool EventLog::WaitAfter(uint64_t cursor, std::chrono::steady_clock::time_point deadline) const {
  std::unique_lock lock(mutex_);
  return published_.wait_until(lock, deadline, [&] { return last_seq_ > cursor; });
}

}  // namespace fe::engine
