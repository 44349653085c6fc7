// The ledger of a thin pool: which volume owns which thin device id, and which device operation was
// in flight. It is the backend's memory across restarts and crashes.
//
// Record intent: every change is persisted *before* the device operation it announces (an id is
// recorded as kCreating before create_thin/create_snap is sent, kRemoving before delete), so after a
// crash every id the kernel may hold is in the ledger, and recovery (DmThinBackend::Open) can finish
// or undo each unfinished operation. An id is only reused once its record is erased, which happens
// after the kernel has confirmed the device is gone. Ids are handed out in increasing order, wrapping
// at kMaxThinId, so a recently freed id is not immediately reused (logs stay unambiguous).
//
// Persistence: JSON (nlohmann), written to a temporary file, fsynced, renamed over the ledger and the
// directory fsynced, so the file on disk is always either the old or the new state. A ledger that
// exists but cannot be parsed is an error, never silently reset: that would forget ids the kernel
// still holds. Open() takes an exclusive flock on "<path>.lock" for the ledger's lifetime, so two
// processes can never manage one pool.
//
// Threads: all methods may be called concurrently (one internal mutex). Memory always matches the
// file: a change that fails to persist is not applied.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>

#include "base/file_lock.h"
#include "base/status.h"
#include "base/unique_fd.h"

namespace fe::storage::dm_thin {

enum class ThinState {
  kCreating,  // id reserved; create_thin/create_snap may or may not have reached the kernel
  kReady,     // the volume exists (device created, directory in place)
  kRemoving,  // delete may or may not have reached the kernel
};

struct ThinRecord {
  uint32_t id = 0;
  ThinState state = ThinState::kCreating;
  uint64_t sectors = 0;            // virtual size of the thin device
  std::optional<uint32_t> origin;  // id it was snapshotted from (informational)
  bool operator==(const ThinRecord&) const = default;
};

std::string_view ThinStateName(ThinState state);

// The next id after `next` that no record holds, wrapping at kMaxThinId; nullopt when every id is
// taken.
std::optional<uint32_t> AllocateThinId(uint32_t next, const std::set<uint32_t>& used);

class ThinLedger {
 public:
  // Loads the ledger at `path` (a missing file is an empty ledger) and locks it. Busy when another
  // process holds the lock.
  static Result<std::unique_ptr<ThinLedger>> Open(const std::string& path);

  // Reserves a new id for `volume` as kCreating and persists it. AlreadyExists when the volume has a
  // record (in any state), NoSpace when all ids are taken.
  Result<uint32_t> BeginCreate(const std::string& volume, uint64_t sectors, std::optional<uint32_t> origin);
  // Moves an existing record to `state` and persists it. NotFound when there is no record.
  Status SetState(const std::string& volume, ThinState state);
  // Drops the record (its id becomes free) and persists it. Ok when there was none.
  Status Erase(const std::string& volume);

  std::optional<ThinRecord> Find(const std::string& volume) const;
  std::map<std::string, ThinRecord> Records() const;
  const std::string& path() const { return path_; }

 private:
  struct State {
    uint32_t next_id = 0;
    std::map<std::string, ThinRecord> records;
  };
  ThinLedger(std::string path, FileLock lock) : path_(std::move(path)), lock_(std::move(lock)) {}
  static Result<State> Load(const std::string& path);
  // `text` as a ledger; InvalidArgument naming the field.
  static Result<State> Parse(const std::string& text);
  // Writes `state` durably, then makes it the in-memory state. REQUIRES: mutex_ held.
  Status Commit(State state);

  const std::string path_;
  const FileLock lock_;
  mutable std::mutex mutex_;
  State state_;  // GUARDED_BY(mutex_)
};

}  // namespace fe::storage::dm_thin
