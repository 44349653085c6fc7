// etcd's v3 API through its JSON gateway (etcd 3.4: POST /v3/kv/range, /v3/kv/put, /v3/kv/txn,
// /v3/lease/grant, ...), on base/http over TCP: no client library, no coordinator of our own. Keys and
// values travel base64-encoded, 64-bit integers as strings, and proto3's JSON leaves out fields at
// their zero value (a failed transaction has no "succeeded").
//
// Endpoints: the members' client URLs. A request goes to the member that answered last and, when it
// gets no answer (the member is down or partitioned), to the next; an error etcd itself returns (no
// quorum, a bad request) is returned as it is, without trying further.
//
// Threads: Send-like methods may be called from several threads.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/http/http_client.h"
#include "base/status.h"

namespace fe::engine::cluster {

struct EtcdEndpoint {
  std::string host;
  int port = 0;
};

// "http://127.0.0.1:2379,http://10.0.0.2:2379" (a list as etcd's --endpoints takes it).
// InvalidArgument naming the URL that is not http://HOST:PORT.
Result<std::vector<EtcdEndpoint>> ParseEtcdEndpoints(std::string_view urls);

struct KeyValue {
  std::string key;
  std::string value;
  int64_t create_revision = 0;
  int64_t mod_revision = 0;
  int64_t lease = 0;  // 0: none
};

class EtcdClient {
 public:
  EtcdClient(std::vector<EtcdEndpoint> endpoints, std::chrono::milliseconds timeout);

  // Sets `key` (attached to `lease` unless 0); the store's revision after it.
  Result<int64_t> Put(std::string_view key, std::string_view value, int64_t lease = 0);
  // The key's current value, or nullopt.
  Result<std::optional<KeyValue>> Get(std::string_view key);
  // Every key starting with `prefix`, in key order; the store's revision they were read at in
  // *revision when given (a watch from revision + 1 misses nothing after them).
  Result<std::vector<KeyValue>> GetPrefix(std::string_view prefix, int64_t* revision = nullptr);
  // How many keys were deleted.
  Result<int64_t> Delete(std::string_view key);
  Result<int64_t> DeletePrefix(std::string_view prefix);
  // Sets `key` only if no such key exists (one transaction: compare its create revision with 0). true
  // when it was created; false when it existed, its current value then in *existing.
  Result<bool> CreateIfAbsent(std::string_view key, std::string_view value, int64_t lease = 0,
                              KeyValue* existing = nullptr);

  // Deletes `key` only if its value is `value` (one transaction); whether it did.
  Result<bool> DeleteIfValue(std::string_view key, std::string_view value);

  // Watches every key starting with `prefix` from `start_revision` (etcd's streaming /v3/watch): each
  // batch of changes is handed to `on_events` with the revision it brings the watcher to (its last
  // event's), until
  // `on_events` returns false or no message came for `idle_timeout` (then OK: watch again from the
  // last revision). FailedPrecondition when `start_revision` is compacted (read the prefix again);
  // Unavailable when no member answered.
  struct WatchEvent {
    bool deleted = false;
    KeyValue kv;  // a deleted key has its key and mod_revision only
  };
  using WatchReceiver = std::function<bool(const std::vector<WatchEvent>& events, int64_t revision)>;
  Status WatchPrefix(std::string_view prefix, int64_t start_revision, const WatchReceiver& on_events,
                     std::chrono::milliseconds idle_timeout);

  // A lease of `ttl`; its id.
  Result<int64_t> GrantLease(std::chrono::seconds ttl);
  // Renews the lease; the seconds it has left, 0 when it is gone (expired or revoked).
  Result<int64_t> KeepAlive(int64_t lease);
  // Ends the lease and deletes every key attached to it.
  Status RevokeLease(int64_t lease);

 private:
  // POSTs `body` to `path` on a member (see the file comment); the reply's JSON.
  Result<nlohmann::json> Call(std::string_view path, const nlohmann::json& body);

  std::vector<http::HttpClient> members_;
  std::atomic<size_t> preferred_{0};
};

// The key just after every key starting with `prefix` (etcd's range_end for a prefix).
std::string PrefixEnd(std::string_view prefix);

}  // namespace fe::engine::cluster
