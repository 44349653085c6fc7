// engine/forkd/http_server.h, with a stand-in handler: slow, idle and hostile clients cannot starve
// the server. Idle and trickling connections are cut at the header deadline and give way to new
// ones beyond the cap; oversized, length-less and unauthenticated requests are refused before their
// body is read; a slow handler holds no I/O; shutdown is bounded with idle connections open and lets
// a request in flight finish.
#include "engine/forkd/http_server.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <mutex>
#include <optional>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "base/unique_fd.h"
#include "engine/forkd/socket_setup.h"
#include "tests/support/scratch.h"
#include "tests/support/unix_socket.h"
#include "tests/support/temp_dir.h"

namespace fe::engine::forkd {
namespace {

using namespace std::chrono_literals;
using SteadyClock = std::chrono::steady_clock;

// A raw client: bytes out, the reply (or what arrived before the server closed) in.
class RawClient {
 public:
  static UniqueFd ConnectUnix(const std::string& path) { return test::ConnectUnixSocket(path); }
  static bool Send(int fd, std::string_view bytes) {
    while (!bytes.empty()) {
      ssize_t sent = ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
      if (sent <= 0) return false;
      bytes.remove_prefix(static_cast<size_t>(sent));
    }
    return true;
  }
  // Reads until the peer closes, a complete response with Content-Length arrived, or `timeout`.
  static std::string Receive(int fd, std::chrono::milliseconds timeout) {
    std::string data;
    const auto deadline = SteadyClock::now() + timeout;
    while (SteadyClock::now() < deadline) {
      pollfd p{fd, POLLIN, 0};
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - SteadyClock::now());
      if (::poll(&p, 1, static_cast<int>(std::max<int64_t>(left.count(), 1))) <= 0) break;
      char buffer[4096];
      ssize_t got = ::recv(fd, buffer, sizeof(buffer), 0);
      if (got <= 0) break;
      data.append(buffer, static_cast<size_t>(got));
      if (Complete(data)) break;
    }
    return data;
  }
  // Whether the peer has closed (a read returns 0) within `timeout`.
  static bool ClosedWithin(int fd, std::chrono::milliseconds timeout) {
    const auto deadline = SteadyClock::now() + timeout;
    while (SteadyClock::now() < deadline) {
      pollfd p{fd, POLLIN, 0};
      if (::poll(&p, 1, 20) > 0) {
        char buffer[4096];
        ssize_t got = ::recv(fd, buffer, sizeof(buffer), MSG_DONTWAIT);
        if (got == 0 || (got < 0 && errno != EAGAIN)) return true;
      }
    }
    return false;
  }

 private:
  static bool Complete(const std::string& data) {
    const size_t end = data.find("\r\n\r\n");
    if (end == std::string::npos) return false;
    const size_t length_at = data.find("Content-Length: ");
    if (length_at == std::string::npos || length_at > end) return true;
    const size_t length = std::stoul(data.substr(length_at + 16));
    return data.size() >= end + 4 + length;
  }
};

int StatusOf(const std::string& response) {
  if (response.rfind("HTTP/1.1 ", 0) != 0) return 0;
  return std::stoi(response.substr(9, 3));
}

ListenerOptions With(const std::function<void(ListenerOptions&)>& set) {
  ListenerOptions options;
  set(options);
  return options;
}

class HttpServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Result<test::TempDir> dir = test::TempDir::Create();
    FE_ASSERT_OK(dir);
    dir_.emplace(std::move(*dir));
    socket_ = dir_->Sub("api.sock");
  }
  void TearDown() override {
    if (server_) server_->Stop(0ms);
  }

  void StartServer(ListenerOptions options = {}, size_t workers = 8) {
    HttpHandlers handlers;
    handlers.handle = [this](const HttpRequest& request) {
      ++handled_;
      HttpResponse response;
      if (request.path == "/slow") std::this_thread::sleep_for(slow_);
      response.body = "{\"path\":\"" + request.path + "\",\"bytes\":" + std::to_string(request.body.size()) + "}";
      return response;
    };
    handlers.requires_body = [](std::string_view method, std::string_view path) {
      return method == "POST" && path == "/needs-body";
    };
    handlers.completed = [this](const HttpRequest&, const HttpResponse& response, double) {
      std::lock_guard lock(mutex_);
      completed_.push_back(response.status);
    };
    handlers.error_body = [](int status, std::string_view message) {
      return "{\"status\":" + std::to_string(status) + ",\"message\":\"" + std::string(message) + "\"}";
    };
    HttpServerOptions server_options;
    server_options.io_threads = 2;
    server_options.worker_threads = workers;
    server_.emplace(std::move(handlers), server_options);
    Result<int> fd = BindUnixSocket(socket_);
    FE_ASSERT_OK(fd);
    options.name = "unix:" + socket_;
    FE_ASSERT_OK(server_->ServeUnixSocket(*fd, options));
    server_->Start();
  }

  // One GET on a fresh connection: the status and how long the round trip took.
  std::pair<int, std::chrono::milliseconds> Get(const std::string& path) {
    const auto start = SteadyClock::now();
    UniqueFd fd = RawClient::ConnectUnix(socket_);
    if (!fd) return {0, 0ms};
    RawClient::Send(fd.get(), "GET " + path + " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    const std::string response = RawClient::Receive(fd.get(), 10s);
    return {StatusOf(response), std::chrono::duration_cast<std::chrono::milliseconds>(SteadyClock::now() - start)};
  }

  std::optional<test::TempDir> dir_;
  std::string socket_;
  std::optional<HttpServer> server_;
  std::atomic<int> handled_{0};
  std::chrono::milliseconds slow_{0};
  std::mutex mutex_;
  std::vector<int> completed_;
};

TEST_F(HttpServerTest, ServesKeepAliveRequestsOnOneConnection) {
  StartServer();
  UniqueFd fd = RawClient::ConnectUnix(socket_);
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(RawClient::Send(fd.get(), "GET /a HTTP/1.1\r\nHost: x\r\n\r\n"));
    const std::string response = RawClient::Receive(fd.get(), 5s);
    EXPECT_EQ(StatusOf(response), 200) << response;
    EXPECT_NE(response.find("{\"path\":\"/a\""), std::string::npos) << response;
  }
}

TEST_F(HttpServerTest, IdleAndTricklingConnectionsDoNotDelayOthersAndAreCutAtTheHeaderDeadline) {
  StartServer(With([](ListenerOptions& o) { o.header_timeout = 1500ms; }));
  std::vector<UniqueFd> idle;
  for (int i = 0; i < 300; ++i) idle.push_back(RawClient::ConnectUnix(socket_));
  std::vector<UniqueFd> trickling;
  for (int i = 0; i < 50; ++i) {
    trickling.push_back(RawClient::ConnectUnix(socket_));
    RawClient::Send(trickling.back().get(), "GET / HTTP/1.1\r\n");
  }
  for (int i = 0; i < 5; ++i) {
    for (UniqueFd& fd : trickling) RawClient::Send(fd.get(), "X-Trickle: 1\r\n");
    auto [status, took] = Get("/healthz");
    EXPECT_EQ(status, 200);
    EXPECT_LT(took, 1000ms) << "a request waited behind idle connections";
    std::this_thread::sleep_for(100ms);
  }
  // The header deadline ends both kinds: idle ones and ones that keep sending header lines.
  EXPECT_TRUE(RawClient::ClosedWithin(idle.front().get(), 5s));
  EXPECT_TRUE(RawClient::ClosedWithin(trickling.front().get(), 5s));
}

TEST_F(HttpServerTest, BeyondTheCapTheConnectionIdleLongestGivesWay) {
  StartServer(With([](ListenerOptions& o) {
    o.max_connections = 10;
    o.header_timeout = 60s;
  }));
  std::vector<UniqueFd> idle;
  for (int i = 0; i < 10; ++i) {
    idle.push_back(RawClient::ConnectUnix(socket_));
    std::this_thread::sleep_for(5ms);
  }
  std::this_thread::sleep_for(100ms);
  auto [status, took] = Get("/new");
  EXPECT_EQ(status, 200);
  EXPECT_TRUE(RawClient::ClosedWithin(idle.front().get(), 2s)) << "the oldest idle connection stays open";
  EXPECT_FALSE(RawClient::ClosedWithin(idle.back().get(), 200ms)) << "the newest idle connection was closed";
}

TEST_F(HttpServerTest, MalformedRequestIs400AndTheServerServesOn) {
  StartServer();
  UniqueFd fd = RawClient::ConnectUnix(socket_);
  RawClient::Send(fd.get(), "NOT HTTP AT ALL\r\n\r\n");
  const std::string response = RawClient::Receive(fd.get(), 5s);
  EXPECT_EQ(StatusOf(response), 400) << response;
  EXPECT_NE(response.find("malformed request"), std::string::npos) << response;
  EXPECT_EQ(Get("/after").first, 200);
}

TEST_F(HttpServerTest, OversizedContentLengthIsRefusedBeforeAnyBodyIsRead) {
  StartServer(With([](ListenerOptions& o) { o.max_body_bytes = 1024; }));
  UniqueFd fd = RawClient::ConnectUnix(socket_);
  const auto start = SteadyClock::now();
  RawClient::Send(fd.get(), "POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000000\r\n\r\n");
  const std::string response = RawClient::Receive(fd.get(), 10s);
  EXPECT_EQ(StatusOf(response), 413) << response;
  EXPECT_NE(response.find("exceeds 1024 bytes"), std::string::npos) << response;
  EXPECT_LT(SteadyClock::now() - start, 2s);
  EXPECT_EQ(handled_.load(), 0);
}

TEST_F(HttpServerTest, ChunkedBodyIsCutAtTheLimit) {
  StartServer(With([](ListenerOptions& o) { o.max_body_bytes = 1024; }));
  UniqueFd fd = RawClient::ConnectUnix(socket_);
  RawClient::Send(fd.get(), "POST /x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n");
  const std::string chunk(512, 'a');
  std::string response;
  for (int i = 0; i < 64 && response.empty(); ++i) {
    if (!RawClient::Send(fd.get(), "200\r\n" + chunk + "\r\n")) break;
    response = RawClient::Receive(fd.get(), 50ms);
  }
  if (response.empty()) response = RawClient::Receive(fd.get(), 5s);
  EXPECT_EQ(StatusOf(response), 413) << response;
  EXPECT_EQ(handled_.load(), 0);
}

TEST_F(HttpServerTest, BodyRequiredWithoutLengthIs411AndAnOptionalOneIsEmpty) {
  StartServer();
  UniqueFd fd = RawClient::ConnectUnix(socket_);
  RawClient::Send(fd.get(), "POST /needs-body HTTP/1.1\r\nHost: x\r\n\r\n");
  std::string response = RawClient::Receive(fd.get(), 5s);
  EXPECT_EQ(StatusOf(response), 411) << response;
  UniqueFd other = RawClient::ConnectUnix(socket_);
  RawClient::Send(other.get(), "POST /optional HTTP/1.1\r\nHost: x\r\n\r\n");
  response = RawClient::Receive(other.get(), 5s);
  EXPECT_EQ(StatusOf(response), 200) << response;
  EXPECT_NE(response.find("\"bytes\":0"), std::string::npos) << response;
}

TEST_F(HttpServerTest, WrongOrMissingTokenIs401AndTheConnectionCloses) {
  StartServer(With([](ListenerOptions& o) { o.token = "s3cret"; }));
  UniqueFd fd = RawClient::ConnectUnix(socket_);
  RawClient::Send(fd.get(), "POST /x HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer nope\r\nContent-Length: 5\r\n\r\n");
  std::string response = RawClient::Receive(fd.get(), 5s);
  EXPECT_EQ(StatusOf(response), 401) << response;
  EXPECT_NE(response.find("WWW-Authenticate: Bearer"), std::string::npos) << response;
  EXPECT_TRUE(RawClient::ClosedWithin(fd.get(), 2s));
  EXPECT_EQ(handled_.load(), 0);
  UniqueFd good = RawClient::ConnectUnix(socket_);
  RawClient::Send(good.get(), "GET /x HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer s3cret\r\n\r\n");
  EXPECT_EQ(StatusOf(RawClient::Receive(good.get(), 5s)), 200);
}

TEST_F(HttpServerTest, UnauthenticatedIdleClientsCannotKeepAuthenticatedOnesOut) {
  StartServer(With([](ListenerOptions& o) {
    o.token = "s3cret";
    o.max_connections = 50;
    o.header_timeout = 30s;
  }));
  std::vector<UniqueFd> attackers;
  for (int i = 0; i < 200; ++i) attackers.push_back(RawClient::ConnectUnix(socket_));
  UniqueFd good = RawClient::ConnectUnix(socket_);
  RawClient::Send(good.get(), "GET /x HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer s3cret\r\n\r\n");
  EXPECT_EQ(StatusOf(RawClient::Receive(good.get(), 5s)), 200);
}

TEST_F(HttpServerTest, SlowRequestsHoldNoIoThread) {
  slow_ = 1500ms;
  StartServer({}, /*workers=*/8);
  std::vector<std::thread> slow;
  for (int i = 0; i < 4; ++i) slow.emplace_back([this] { EXPECT_EQ(Get("/slow").first, 200); });
  std::this_thread::sleep_for(200ms);
  auto [status, took] = Get("/fast");
  EXPECT_EQ(status, 200);
  EXPECT_LT(took, 1000ms);
  for (std::thread& thread : slow) thread.join();
}

TEST_F(HttpServerTest, StopIsBoundedWithIdleConnectionsAndLetsARequestInFlightFinish) {
  slow_ = 500ms;
  StartServer(With([](ListenerOptions& o) { o.header_timeout = 60s; }));
  std::vector<UniqueFd> idle;
  for (int i = 0; i < 100; ++i) idle.push_back(RawClient::ConnectUnix(socket_));
  UniqueFd in_flight = RawClient::ConnectUnix(socket_);
  RawClient::Send(in_flight.get(), "GET /slow HTTP/1.1\r\nHost: x\r\n\r\n");
  std::this_thread::sleep_for(100ms);
  const auto start = SteadyClock::now();
  server_->Stop(5s);
  EXPECT_LT(SteadyClock::now() - start, 2s);
  const std::string response = RawClient::Receive(in_flight.get(), 2s);
  EXPECT_EQ(StatusOf(response), 200) << "the request in flight got no answer: " << response;
  EXPECT_NE(response.find("Connection: close"), std::string::npos) << response;
  EXPECT_TRUE(RawClient::ClosedWithin(idle.front().get(), 1s));
  EXPECT_EQ(RawClient::ConnectUnix(socket_).valid(), false) << "still accepting after Stop";
}

}  // namespace
}  // namespace fe::engine::forkd
