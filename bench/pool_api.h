// The benchmarks' view of forkd (forkbench-pool, forkbench-server): one persistent HTTP/1.1 keep-alive connection over
// the Unix socket per PoolApi object (so a round trip measures a request, not a connect), with the few calls the
// benchmark makes. Not thread-safe: one object per client thread.
#pragma once

#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "base/status.h"

namespace httplib {
class Client;
}

namespace fe::bench {

struct AcquireSample {
  int status = 0;  // HTTP status; 0 when no reply
  bool hit = false;
  int64_t server_us = 0;      // forkd's latency_us
  int64_t round_trip_ns = 0;  // client send to reply parsed
};

struct PoolCounts {
  int ready = 0;
  int refilling = 0;
  uint64_t hits = 0;
  uint64_t misses = 0;
  bool throttled = false;
};

class PoolApi {
 public:
  explicit PoolApi(const std::string& socket);
  ~PoolApi();

  // POST path with a JSON body; the parsed reply, or an error naming the request and forkd's answer.
  Result<nlohmann::json> Post(const std::string& path, const nlohmann::json& body, int expected_status);
  Result<nlohmann::json> Get(const std::string& path);
  // DELETE path, expecting 204 (an empty JSON value).
  Result<nlohmann::json> Delete(const std::string& path);

  AcquireSample Acquire(const std::string& pool, const std::string& name, bool no_wait);
  Result<PoolCounts> Counts(const std::string& pool);
  // Polls until the pool holds `ready` members and none is refilling, or `timeout_s` passes.
  Result<PoolCounts> WaitFull(const std::string& pool, int ready, int timeout_s);

 private:
  std::unique_ptr<httplib::Client> client_;
};

}  // namespace fe::bench
