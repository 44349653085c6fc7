// Pool releases through the release journal (engine/release_journal.h): an acquire pays one
// group-committed fdatasync; the released instances' metadata is written later, in batches that cost
// two syncfs each however many instances they hold, and the journal's checkpoint then moves past them.
//
// Invariant: an instance whose release is not yet durable in its instance.json has metadata_behind
// set and an unapplied journal record. Anything else that writes the instance's metadata (Commit,
// removal) does so under metadata_write and clears metadata_behind: its write supersedes the release
// record's.
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <utility>

#include "engine/engine.h"

namespace fe::engine {
namespace {

// Waits on a condition variable: timed by the kernel, so the real steady clock.
using SteadyClock = std::chrono::steady_clock;

// Releases arriving within this window share a checkpoint.
constexpr std::chrono::milliseconds kBatchWindow{200};
// Acquires come first: a checkpoint's two syncfs would queue in front of the journal flushes of the
// acquires still arriving, so while releases keep coming it waits for a pause of kReleasesQuiet, at
// most kMaxCheckpointDelay after its batch began and while the batch holds under a quarter of the
// journal (a full journal makes acquires fall back to synchronous metadata writes).
constexpr std::chrono::milliseconds kReleasesQuiet{50};
constexpr std::chrono::seconds kMaxCheckpointDelay{1};
constexpr std::chrono::seconds kRetryAfter{1};

}  // namespace

Status Engine::CommitRelease(const std::shared_ptr<Entry>& entry, Instance instance) {
  ReleaseRecord record;
  record.id = instance.id;
  record.name = instance.name;
  record.expires_at = instance.lifecycle.expires_at;
  record.idle_standby_s = instance.lifecycle.idle_standby_s;
  Result<uint64_t> seq = journal_->Append(record);
  if (!seq.ok()) {
    // A full journal is a burst outrunning the checkpointer; anything else is worth a warning.
    if (seq.status().code() == ErrorCode::kNoSpace) {
      spdlog::debug("release of {}: {}; writing its metadata synchronously", instance.id, seq.status().ToString());
    } else {
      spdlog::warn("release of {}: {}; writing its metadata synchronously", instance.id, seq.status().ToString());
    }
    return Commit(entry, std::move(instance));
  }
  const std::string id = instance.id;
  instance.updated_at = clock_.WallNowRfc3339();
  {
    std::lock_guard write(entry->metadata_write);
    entry->metadata_behind = true;
    std::lock_guard lock(mutex_);
    entry->instance = std::move(instance);
  }
  {
    std::lock_guard lock(checkpoint_mutex_);
    to_checkpoint_.emplace_back(*seq, id);
    last_release_ = SteadyClock::now();
  }
  checkpoint_wake_.notify_one();
  return Status::Ok();
}

Status Engine::ReplayReleases() {
  for (const ReleaseRecord& record : journal_->pending_at_open()) {
    Result<Instance> read = store_.Read(record.id);
    if (!read.ok() && read.status().code() != ErrorCode::kNotFound) {
      // Left unapplied (retried at the next start); the instance itself is reported by Recover.
      std::string action =
          "journaled release of " + record.id + " as '" + record.name + "' not applied: " + read.status().ToString();
      spdlog::warn("recovery: {}", action);
      recovery_.actions.push_back(std::move(action));
      continue;
    }
    if (read.ok() && !read->pool.empty()) {
      std::string pool = read->pool;
      read->name = record.name;
      read->pool.clear();
      read->lifecycle.expires_at = record.expires_at;
      read->lifecycle.idle_standby_s = record.idle_standby_s;
      read->updated_at = clock_.WallNowRfc3339();
      FE_RETURN_IF_ERROR(store_.Write(*read).Annotate("replaying the release journal"));
      std::string action =
          "applied the journaled release of " + record.id + " from pool '" + pool + "' as '" + record.name + "'";
      spdlog::warn("recovery: {}", action);
      recovery_.actions.push_back(std::move(action));
    }
    // Otherwise already applied (its metadata was written later), or the instance is gone.
    journal_->MarkApplied(record.seq);
  }
  return journal_->Checkpoint().Annotate("replaying the release journal");
}

void Engine::CheckpointLoop() {
  std::unique_lock lock(checkpoint_mutex_);
  while (true) {
    checkpoint_wake_.wait(lock, [this] { return stopping_ || !to_checkpoint_.empty(); });
    if (to_checkpoint_.empty()) return;  // stopping, nothing left
    const SteadyClock::time_point deadline = SteadyClock::now() + kMaxCheckpointDelay;
    checkpoint_wake_.wait_for(lock, kBatchWindow, [this] { return stopping_; });
    while (!stopping_ && to_checkpoint_.size() < journal_->capacity() / 4 && SteadyClock::now() < deadline &&
           SteadyClock::now() - last_release_ < kReleasesQuiet) {
      checkpoint_wake_.wait_until(lock, std::min(deadline, last_release_ + kReleasesQuiet));
    }
    std::vector<std::pair<uint64_t, std::string>> batch = std::exchange(to_checkpoint_, {});
    lock.unlock();
    std::vector<std::pair<uint64_t, std::string>> failed = CheckpointReleases(std::move(batch));
    lock.lock();
    if (failed.empty()) continue;
    to_checkpoint_.insert(to_checkpoint_.end(), failed.begin(), failed.end());
    if (stopping_) {
      spdlog::warn("{} pool release(s) left in the release journal: applied at the next start", failed.size());
      return;
    }
    checkpoint_wake_.wait_for(lock, kRetryAfter, [this] { return stopping_; });
  }
}

std::vector<std::pair<uint64_t, std::string>> Engine::CheckpointReleases(
    std::vector<std::pair<uint64_t, std::string>> batch) {
  std::map<std::string, std::shared_ptr<Entry>> published;  // ordered: locks are taken in id order
  {
    std::lock_guard lock(mutex_);
    for (const auto& [seq, id] : batch) {
      auto found = entries_.find(id);
      if (found != entries_.end() && !found->second->deleted) published.emplace(id, found->second);
    }
  }
  std::vector<std::unique_lock<std::mutex>> held;
  std::vector<std::shared_ptr<Entry>> staged;
  Status status;
  for (const auto& [id, entry] : published) {
    held.emplace_back(entry->metadata_write);
    if (!entry->metadata_behind) continue;
    status = store_.Stage(Read(entry));
    if (!status.ok()) break;
    staged.push_back(entry);
  }
  // Staged files durable before any rename, renames durable before the journal forgets the records.
  if (status.ok() && !staged.empty()) status = store_.SyncFilesystem();
  for (size_t i = 0; status.ok() && i < staged.size(); ++i) status = store_.PublishStaged(Read(staged[i]).id);
  if (status.ok() && !staged.empty()) status = store_.SyncFilesystem();
  if (status.ok()) {
    for (const std::shared_ptr<Entry>& entry : staged) entry->metadata_behind = false;
  }
  held.clear();
  if (!status.ok()) {
    spdlog::warn("release checkpoint of {} record(s) failed, retrying: {}", batch.size(), status.ToString());
    return batch;
  }
  for (const auto& [seq, id] : batch) journal_->MarkApplied(seq);
  if (Status checkpoint = journal_->Checkpoint(); !checkpoint.ok()) {
    spdlog::warn("release journal checkpoint: {}", checkpoint.ToString());
  }
  return {};
}

}  // namespace fe::engine
