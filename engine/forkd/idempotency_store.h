// Retry-safe requests. A client that sends `Idempotency-Key: <key>` on a request that makes instances
// (POST /v1/instances, POST /v1/instances/{id}/fork, POST /v1/pools/{name}/acquire) gets, for every
// retry with the same key within the window, the first attempt's reply (status and body, errors
// included) instead of a second execution, also across restarts.
//
// One file per key, <data_root>/requests/<key>.json (engine/data_root.h), written durably:
//  - before the work: "pending", with the request (method, path, body) and the instance names it asks
//    to make;
//  - after it: "done", with the reply. A reply is only sent once its record is durable.
// A pending record found at start marks an attempt a crash cut (its client got no reply): forkd
// removes the instances of those names that the attempt made (created since the record), then the
// record, so the retry runs clean, as a fan-out cut by a crash is removed whole
// (engine/fan_out_record.h). An acquire that kept the member's generated name names nothing to undo.
//
// A key is 1 to 128 of [A-Za-z0-9._:-] (a UUID fits). The same key with another request is refused
// (400, naming the key); a retry while the first attempt still runs is 409 busy.
//
// Threads: every method may be called concurrently.
#pragma once

#include <chrono>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "base/clock.h"
#include "base/status.h"
#include "engine/engine.h"

namespace fe::engine::forkd {

class IdempotencyStore {
 public:
  struct StoredReply {
    int status = 0;
    std::string body;
  };
  // A request as the store compares it: a retry must repeat all three.
  struct Request {
    std::string method;
    std::string path;
    std::string body;
    bool operator==(const Request&) const = default;
  };
  // What Begin decided: run the request (then Finish), or answer `reply` again.
  struct Claim {
    bool replay = false;
    StoredReply reply;
  };
  // A pending record: an attempt a crash cut.
  struct Unfinished {
    std::string key;
    std::vector<std::string> names;
    std::string started_at;  // RFC 3339, comparable with an instance's created_at
  };

  // Creates `dir` (mode 0700) when missing. Finished records are kept for `window`.
  static Result<std::unique_ptr<IdempotencyStore>> Open(std::string dir, std::chrono::seconds window,
                                                        const Clock& clock = SystemClock());

  // InvalidArgument naming the key unless it is 1 to 128 of [A-Za-z0-9._:-].
  static Status CheckKey(std::string_view key);

  // The first time: writes the pending record (durably) and returns a claim to run. A finished
  // record of the same request: a claim to replay it. Another request under the key: InvalidArgument;
  // the key's first attempt still running in this process: Busy.
  Result<Claim> Begin(const std::string& key, const Request& request, const std::vector<std::string>& names);
  // Records the reply of a claimed key durably. When that fails the pending record is removed, so the
  // client's retry runs again rather than finding a record that can never finish.
  Status Finish(const std::string& key, const StoredReply& reply);

  // The pending records on disk (at start: those a crash left). Forget removes one once undone.
  Result<std::vector<Unfinished>> ListUnfinished() const;
  Status Forget(const std::string& key);

  // Removes finished records older than the window; returns how many.
  Result<size_t> Sweep();

  const std::string& dir() const { return dir_; }
  std::chrono::seconds window() const { return window_; }

 private:
  IdempotencyStore(std::string dir, std::chrono::seconds window, const Clock& clock)
      : dir_(std::move(dir)), window_(window), clock_(clock), last_sweep_(clock.Now()) {}
  std::string PathOf(const std::string& key) const;

  const std::string dir_;
  const std::chrono::seconds window_;
  const Clock& clock_;
  std::mutex mutex_;
  std::set<std::string> in_flight_;  // keys claimed and not yet finished; GUARDED_BY(mutex_)
  Clock::SteadyPoint last_sweep_;    // Begin sweeps once an hour; GUARDED_BY(mutex_)
};

// At start, before serving: for each pending record (an attempt a crash cut), deletes the instances
// of its names created since the attempt began, then forgets the record. A record whose instances
// cannot all be deleted is kept (and logged) for the next start. Returns how many were undone.
Result<size_t> UndoCutAttempts(IdempotencyStore& store, engine::Engine& engine);

}  // namespace fe::engine::forkd
