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
  // Every key starting with `prefix`, in key order.
  Result<std::vector<KeyValue>> GetPrefix(std::string_view prefix);
  // How many keys were deleted.
  Result<int64_t> Delete(std::string_view key);
  Result<int64_t> DeletePrefix(std::string_view prefix);
  // Sets `key` only if no such key exists (one transaction: compare its create revision with 0). true
  // when it was created; false when it existed, its current value then in *existing.
  Result<bool> CreateIfAbsent(std::string_view key, std::string_view value, int64_t lease = 0,
                              KeyValue* existing = nullptr);

  // Deletes `key` only if its value is `value` (one transaction); whether it did.
  Result<bool> DeleteIfValue(std::string_view key, std::string_view value);

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
