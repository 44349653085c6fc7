// The Unix-socket HTTP client of the plugins and forkctl: requests and answers against a stand-in
// server, failures that name the request and the socket, and the one status-to-code mapping.
#include "base/http/http_client.h"

#include <sys/socket.h>
#include <sys/un.h>

#include <cstdio>
#include <optional>
#include <thread>

#include <gtest/gtest.h>
#include <httplib.h>

#include "base/unique_fd.h"

#include "tests/support/fake_api_server.h"
#include "tests/support/temp_dir.h"

namespace fe::http {
namespace {

using namespace std::chrono_literals;

class HttpClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Result<test::TempDir> dir = test::TempDir::Create();
    ASSERT_TRUE(dir.ok()) << dir.status().ToString();
    dir_.emplace(std::move(*dir));
    socket_ = dir_->Sub("api.sock");
  }

  std::optional<test::TempDir> dir_;
  std::string socket_;
};

TEST_F(HttpClientTest, SendsEachMethodWithItsBodyAndReturnsTheAnswer) {
  test::FakeApiServer server(socket_);
  server.Respond("PUT /api/v1/vm.pause", 204, "");
  server.Respond("GET /machine-config", 200, R"({"vcpu_count":2})");
  server.Start();
  HttpClient client(socket_, "test", 2s);
  Result<Response> put = client.Send("PUT", "/api/v1/vm.pause", R"({"a":1})");
  ASSERT_TRUE(put.ok()) << put.status().ToString();
  EXPECT_EQ(put->status, 204);
  Result<Response> get = client.Send("GET", "/machine-config", "", {{"Accept", "application/json"}});
  ASSERT_TRUE(get.ok()) << get.status().ToString();
  EXPECT_EQ(get->status, 200);
  EXPECT_EQ(get->body, R"({"vcpu_count":2})");
  for (const char* method : {"PATCH", "POST", "DELETE"}) {
    EXPECT_TRUE(client.Send(method, "/x", "{}").ok()) << method;
  }
  std::vector<test::RecordedRequest> requests = server.requests();
  ASSERT_EQ(requests.size(), 5u);
  EXPECT_EQ(requests[0].method, "PUT");
  EXPECT_EQ(requests[0].body, R"({"a":1})");
  EXPECT_EQ(requests[0].content_type, "application/json");
  EXPECT_EQ(requests[4].method, "DELETE");
}

TEST_F(HttpClientTest, AMissingSocketIsNotFoundNamingTheRequestAndTheSocket) {
  HttpClient client(socket_, "cloud-hypervisor", 1s);
  Result<Response> sent = client.Send("PUT", "/api/v1/vm.pause", "");
  EXPECT_EQ(sent.status().code(), ErrorCode::kNotFound) << sent.status().ToString();
  EXPECT_NE(sent.status().message().find("cloud-hypervisor PUT /api/v1/vm.pause: connect to " + socket_),
            std::string::npos)
      << sent.status().ToString();
}

TEST_F(HttpClientTest, ASocketNobodyServesIsIo) {
  // A socket that is bound but never listened on: connect is refused.
  UniqueFd bound(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::snprintf(address.sun_path, sizeof(address.sun_path), "%s", socket_.c_str());
  ASSERT_EQ(::bind(bound.get(), reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);
  HttpClient client(socket_, "firecracker API", 1s);
  Result<Response> sent = client.Send("GET", "/", "");
  EXPECT_EQ(sent.status().code(), ErrorCode::kIo) << sent.status().ToString();
  EXPECT_NE(sent.status().message().find("firecracker API GET / via " + socket_), std::string::npos)
      << sent.status().ToString();
}

TEST_F(HttpClientTest, AnUnknownMethodIsRefusedBeforeConnecting) {
  HttpClient client(socket_, "test", 1s);
  EXPECT_EQ(client.Send("BREW", "/pot", "").status().code(), ErrorCode::kInvalidArgument);
}

TEST(HttpErrorTest, EveryStatusMapsToOneCode) {
  EXPECT_EQ(ErrorCodeForHttpStatus(400), ErrorCode::kInvalidArgument);
  EXPECT_EQ(ErrorCodeForHttpStatus(413), ErrorCode::kInvalidArgument);
  EXPECT_EQ(ErrorCodeForHttpStatus(422), ErrorCode::kInvalidArgument);
  EXPECT_EQ(ErrorCodeForHttpStatus(401), ErrorCode::kPermissionDenied);
  EXPECT_EQ(ErrorCodeForHttpStatus(403), ErrorCode::kPermissionDenied);
  EXPECT_EQ(ErrorCodeForHttpStatus(404), ErrorCode::kNotFound);
  EXPECT_EQ(ErrorCodeForHttpStatus(405), ErrorCode::kBusy);
  EXPECT_EQ(ErrorCodeForHttpStatus(409), ErrorCode::kBusy);
  EXPECT_EQ(ErrorCodeForHttpStatus(503), ErrorCode::kUnavailable);
  EXPECT_EQ(ErrorCodeForHttpStatus(507), ErrorCode::kNoSpace);
  EXPECT_EQ(ErrorCodeForHttpStatus(500), ErrorCode::kIo);
}

TEST(HttpErrorTest, TheMessageNamesTheRequestStatusAndACutDetail) {
  Status error = HttpError(DescribeRequest("fc", "PUT", "/vm", "/s"), 400, std::string(3000, 'x'));
  EXPECT_EQ(error.code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(error.message().rfind("fc PUT /vm via /s: HTTP 400: xxx", 0), 0u) << error.message();
  EXPECT_LT(error.message().size(), 2100u);
  EXPECT_EQ(HttpError("r", 500, "").message(), "r: HTTP 500");
}

// A TCP server on loopback that answers every request with the client port it came from: which
// connection carried it.
class ConnectionEchoServer {
 public:
  explicit ConnectionEchoServer(time_t keep_alive_s) {
    server_.set_keep_alive_timeout(keep_alive_s);
    auto echo = [](const httplib::Request& request, httplib::Response& response) {
      response.set_content(std::to_string(request.remote_port), "text/plain");
    };
    server_.Get("/port", echo);
    server_.Post("/port", echo);
    port_ = server_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { server_.listen_after_bind(); });
  }
  ~ConnectionEchoServer() {
    server_.stop();
    thread_.join();
  }
  int port() const { return port_; }

 private:
  httplib::Server server_;
  int port_ = 0;
  std::thread thread_;
};

std::string PortOf(const HttpClient& client, const char* method = "GET") {
  Result<Response> answer = client.Send(method, "/port", "");
  EXPECT_TRUE(answer.ok()) << answer.status().ToString();
  return answer.ok() ? answer->body : "(failed: " + answer.status().ToString() + ")";
}

TEST(HttpClientConnectionsTest, WithoutReuseEachRequestHasAConnectionOfItsOwn) {
  ConnectionEchoServer server(5);
  const HttpClient client = HttpClient::Tcp("127.0.0.1", server.port(), "test", 2s);
  EXPECT_NE(PortOf(client), PortOf(client));
}

TEST(HttpClientConnectionsTest, ReusedConnectionsCarryRequestsWhileYoungerThanTheIdleBound) {
  ConnectionEchoServer server(5);
  HttpClient client = HttpClient::Tcp("127.0.0.1", server.port(), "test", 2s);
  client.ReuseConnections(300ms);
  const std::string first = PortOf(client);
  EXPECT_EQ(PortOf(client), first);
  const HttpClient copy = client;  // copies share the connections
  EXPECT_EQ(PortOf(copy, "POST"), first);
  std::this_thread::sleep_for(400ms);
  EXPECT_NE(PortOf(client), first) << "a connection idle beyond the bound is not used again";
}

TEST(HttpClientConnectionsTest, AConnectionTheServerClosedIsLeftForANewOneBeforeAnythingIsSent) {
  ConnectionEchoServer server(1);  // the server closes idle connections after 1 s
  HttpClient client = HttpClient::Tcp("127.0.0.1", server.port(), "test", 2s);
  client.ReuseConnections(10s);  // wrongly above the server's timeout
  const std::string first = PortOf(client);
  std::this_thread::sleep_for(1500ms);
  const std::string second = PortOf(client, "POST");
  EXPECT_NE(second, first) << "a POST on a connection the server closed is sent on a new one";
  EXPECT_EQ(PortOf(client), second);
}

}  // namespace
}  // namespace fe::http
