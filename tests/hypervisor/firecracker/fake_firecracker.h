// A test double of Firecracker's API server on a Unix socket: records every request and answers
// GET /version with `version`, GET /vm/config with `vm_config`, and 204 to anything else unless told
// otherwise (Respond). Runs on a thread of the test (Start) or blocks the calling thread (Serve, for a
// child process standing in for the firecracker process).
#pragma once

#include <gtest/gtest.h>
#include <httplib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "hypervisor/firecracker/json_util.h"

namespace fe::hypervisor::firecracker::test {

struct Request {
  std::string method;
  std::string path;
  std::string body;
  Json json;  // the body parsed, or null
};

class FakeFirecracker {
 public:
  // Called for a request before the canned answers; return true when it answered.
  using Hook = std::function<bool(const httplib::Request&, httplib::Response&)>;

  explicit FakeFirecracker(std::string socket) : socket_(std::move(socket)) {
    server_.set_address_family(AF_UNIX);
    auto handle = [this](const httplib::Request& request, httplib::Response& response) {
      Hook hook;
      {
        std::lock_guard lock(mutex_);
        requests_.push_back({request.method, request.path, request.body,
                             Json::parse(request.body, nullptr, /*allow_exceptions=*/false)});
        if (requests_.back().json.is_discarded()) requests_.back().json = nullptr;
        hook = hook_;
      }
      if (hook && hook(request, response)) return;
      std::lock_guard lock(mutex_);
      auto canned = responses_.find(request.method + " " + request.path);
      if (canned != responses_.end()) {
        response.status = canned->second.first;
        response.set_content(canned->second.second, "application/json");
      } else if (request.method == "GET" && request.path == "/version") {
        response.set_content(Json{{"firecracker_version", version}}.dump(), "application/json");
      } else if (request.method == "GET" && request.path == "/vm/config") {
        response.set_content(vm_config.dump(), "application/json");
      } else {
        response.status = 204;
      }
    };
    server_.Get(".*", handle);
    server_.Put(".*", handle);
    server_.Patch(".*", handle);
  }

  ~FakeFirecracker() {
    server_.stop();
    if (thread_.joinable()) thread_.join();
  }

  void Start() {
    ::unlink(socket_.c_str());
    ASSERT_TRUE(server_.bind_to_port(socket_.c_str(), 80)) << "bind " << socket_;
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    // stop() is a no-op until the server runs: wait, so the destructor can always stop it.
    while (!server_.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }

  // Blocks serving until the process is killed.
  void Serve() {
    ::unlink(socket_.c_str());
    if (server_.bind_to_port(socket_.c_str(), 80)) server_.listen_after_bind();
  }

  void Respond(const std::string& method_and_path, int status, std::string body) {
    std::lock_guard lock(mutex_);
    responses_[method_and_path] = {status, std::move(body)};
  }
  void SetHook(Hook hook) {
    std::lock_guard lock(mutex_);
    hook_ = std::move(hook);
  }

  std::vector<Request> requests() {
    std::lock_guard lock(mutex_);
    return requests_;
  }
  // The requests as "METHOD /path", in order.
  std::vector<std::string> calls() {
    std::vector<std::string> out;
    for (const Request& request : requests()) out.push_back(request.method + " " + request.path);
    return out;
  }

  std::string version = "1.16.0";
  Json vm_config = Json::object();

 private:
  std::string socket_;
  httplib::Server server_;
  std::thread thread_;
  std::mutex mutex_;
  std::vector<Request> requests_;
  std::map<std::string, std::pair<int, std::string>> responses_;
  Hook hook_;
};

}  // namespace fe::hypervisor::firecracker::test
