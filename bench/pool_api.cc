#include "bench/pool_api.h"

#include <sys/socket.h>

#include <chrono>
#include <thread>

#include <httplib.h>

namespace fe::bench {
namespace {

using Json = nlohmann::json;
using Clock = std::chrono::steady_clock;

Result<Json> Reply(const httplib::Result& result, const std::string& what, int expected_status) {
  if (!result) return Status::Io(what + ": no reply: " + httplib::to_string(result.error()));
  if (result->status != expected_status) {
    return Status::Internal(what + ": HTTP " + std::to_string(result->status) + ": " + result->body);
  }
  Json json = Json::parse(result->body, nullptr, false);
  if (json.is_discarded()) return Status::Internal(what + ": reply is not JSON: " + result->body);
  return json;
}

}  // namespace

PoolApi::PoolApi(const std::string& socket) : client_(std::make_unique<httplib::Client>(socket)) {
  client_->set_address_family(AF_UNIX);
  client_->set_keep_alive(true);
  client_->set_connection_timeout(std::chrono::seconds(10));
  client_->set_read_timeout(std::chrono::seconds(120));
}

PoolApi::~PoolApi() = default;

Result<Json> PoolApi::Post(const std::string& path, const Json& body, int expected_status) {
  return Reply(client_->Post(path.c_str(), body.dump(), "application/json"), "POST " + path, expected_status);
}

Result<Json> PoolApi::Get(const std::string& path) { return Reply(client_->Get(path.c_str()), "GET " + path, 200); }

Result<Json> PoolApi::Delete(const std::string& path) {
  httplib::Result result = client_->Delete(path.c_str());
  if (!result) return Status::Io("DELETE " + path + ": no reply: " + httplib::to_string(result.error()));
  if (result->status != 204) {
    return Status::Internal("DELETE " + path + ": HTTP " + std::to_string(result->status) + ": " + result->body);
  }
  return Json();
}

AcquireSample PoolApi::Acquire(const std::string& pool, const std::string& name, bool no_wait) {
  std::string path = "/v1/pools/" + pool + "/acquire";
  std::string body = Json{{"name", name}, {"no_wait", no_wait}}.dump();
  Clock::time_point start = Clock::now();
  httplib::Result result = client_->Post(path.c_str(), body, "application/json");
  AcquireSample sample;
  if (!result) return sample;
  sample.status = result->status;
  if (result->status == 200) {
    Json json = Json::parse(result->body, nullptr, false);
    if (!json.is_discarded()) {
      sample.hit = json.value("hit", false);
      sample.server_us = json.value("latency_us", int64_t{0});
    }
  }
  sample.round_trip_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - start).count();
  return sample;
}

Result<PoolCounts> PoolApi::Counts(const std::string& pool) {
  Result<Json> json = Get("/v1/pools/" + pool);
  if (!json.ok()) return json.status();
  return PoolCounts{.ready = json->value("ready", 0),
                    .refilling = json->value("refilling", 0),
                    .hits = json->value("hits", uint64_t{0}),
                    .misses = json->value("misses", uint64_t{0}),
                    .throttled = json->value("throttled", false)};
}

Result<PoolCounts> PoolApi::WaitFull(const std::string& pool, int ready, int timeout_s) {
  Clock::time_point deadline = Clock::now() + std::chrono::seconds(timeout_s);
  while (true) {
    Result<PoolCounts> counts = Counts(pool);
    if (!counts.ok() || (counts->ready >= ready && counts->refilling == 0) || Clock::now() > deadline) return counts;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

}  // namespace fe::bench
