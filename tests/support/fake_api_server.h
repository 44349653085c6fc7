// A test double of a hypervisor's HTTP API on a Unix socket (cloud-hypervisor, Firecracker): records
// every request, answers from a hook, then canned answers ("METHOD /path"), then the hypervisor's
// defaults, and 204 to anything else. Runs on a thread of the test (Start) or blocks the calling
// thread (Serve, for a child process standing in for the hypervisor process). Header-only: its users
// link cpp-httplib already.
#pragma once

#include <gtest/gtest.h>
#include <httplib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

namespace fe::test {

struct RecordedRequest {
  std::string method;
  std::string path;
  std::string body;
  std::string content_type;
  nlohmann::ordered_json json;  // the body parsed (keys in their order, as the plugins keep them), or null
};

class FakeApiServer {
 public:
  // Answers a request when it returns true.
  using Handler = std::function<bool(const httplib::Request&, httplib::Response&)>;

  // `defaults`: the hypervisor's own answers, consulted after the hook and the canned answers.
  explicit FakeApiServer(std::string socket, Handler defaults = {})
      : socket_(std::move(socket)), defaults_(std::move(defaults)) {
    server_.set_address_family(AF_UNIX);
    auto handle = [this](const httplib::Request& request, httplib::Response& response) {
      Handler hook;
      {
        std::lock_guard lock(mutex_);
        nlohmann::ordered_json json = nlohmann::ordered_json::parse(request.body, nullptr, /*allow_exceptions=*/false);
        requests_.push_back({request.method, request.path, request.body, request.get_header_value("Content-Type"),
                             json.is_discarded() ? nlohmann::ordered_json() : json});
        hook = hook_;
      }
      if (hook && hook(request, response)) return;
      {
        std::lock_guard lock(mutex_);
        auto canned = responses_.find(request.method + " " + request.path);
        if (canned != responses_.end()) {
          response.status = canned->second.first;
          response.set_content(canned->second.second, "application/json");
          return;
        }
      }
      if (defaults_ && defaults_(request, response)) return;
      response.status = 204;
    };
    server_.Get(".*", handle);
    server_.Put(".*", handle);
    server_.Patch(".*", handle);
    server_.Post(".*", handle);
    server_.Delete(".*", handle);
  }
  FakeApiServer(const FakeApiServer&) = delete;
  FakeApiServer& operator=(const FakeApiServer&) = delete;

  ~FakeApiServer() {
    server_.stop();
    if (thread_.joinable()) thread_.join();
  }

  void Start() {
    ::unlink(socket_.c_str());
    ASSERT_TRUE(server_.bind_to_port(socket_.c_str(), 80)) << "bind " << socket_;
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    // stop() before the server runs would be lost and leave listen_after_bind() waiting forever.
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
  void SetHook(Handler hook) {
    std::lock_guard lock(mutex_);
    hook_ = std::move(hook);
  }

  std::vector<RecordedRequest> requests() {
    std::lock_guard lock(mutex_);
    return requests_;
  }
  // The requests as "METHOD /path", in order.
  std::vector<std::string> calls() {
    std::vector<std::string> out;
    for (const RecordedRequest& request : requests()) out.push_back(request.method + " " + request.path);
    return out;
  }

 private:
  std::string socket_;
  Handler defaults_;
  httplib::Server server_;
  std::thread thread_;
  std::mutex mutex_;
  std::vector<RecordedRequest> requests_;
  std::map<std::string, std::pair<int, std::string>> responses_;
  Handler hook_;
};

}  // namespace fe::test
