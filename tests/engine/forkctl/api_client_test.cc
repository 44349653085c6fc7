#include "engine/forkctl/api_client.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <optional>
#include <thread>

#include <gtest/gtest.h>
#include <httplib.h>

#include "tests/support/scratch.h"
#include "tests/support/temp_dir.h"

namespace fe::engine::forkctl {
namespace {

TEST(ErrorFromReplyTest, CarriesTheServersMessageCodeAndHttpStatus) {
  Status status = ErrorFromReply(409, R"({"code":"already_exists","message":"instance name 'a' is taken"})");
  EXPECT_EQ(status.code(), ErrorCode::kAlreadyExists);
  EXPECT_EQ(status.message(), "instance name 'a' is taken (already_exists, HTTP 409)");
}

TEST(ErrorFromReplyTest, AnUnknownCodeNameIsKeptInTheTextAndMappedByStatus) {
  Status status = ErrorFromReply(413, R"({"code":"payload_too_large","message":"body over 64 KiB"})");
  EXPECT_EQ(status.code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(status.message(), "body over 64 KiB (payload_too_large, HTTP 413)");
  EXPECT_EQ(ErrorFromReply(401, R"({"code":"unauthenticated","message":"no token"})").code(),
            ErrorCode::kPermissionDenied);
}

TEST(ErrorFromReplyTest, ABodyThatIsNotAnErrorObjectIsShownAsText) {
  Status status = ErrorFromReply(502, "Bad Gateway\n");
  EXPECT_EQ(status.code(), ErrorCode::kInternal);
  EXPECT_EQ(status.message(), "Bad Gateway (HTTP 502)");
  EXPECT_EQ(ErrorFromReply(404, "").message(), "request failed (HTTP 404)");
  EXPECT_EQ(ErrorFromReply(404, R"({"code":1,"message":"x"})").message(), R"({"code":1,"message":"x"} (HTTP 404))");
}

TEST(ErrorCodeFromNameTest, InvertsErrorCodeName) {
  for (ErrorCode code : {ErrorCode::kInvalidArgument, ErrorCode::kNotFound, ErrorCode::kAlreadyExists,
                         ErrorCode::kPermissionDenied, ErrorCode::kUnsupported, ErrorCode::kNoSpace, ErrorCode::kBusy,
                         ErrorCode::kFailedPrecondition, ErrorCode::kIo, ErrorCode::kInternal}) {
    EXPECT_EQ(ErrorCodeFromName(ErrorCodeName(code)), code) << ErrorCodeName(code);
  }
  EXPECT_EQ(ErrorCodeFromName("no_such_code"), ErrorCode::kInternal);
}

TEST(EncodePathSegmentTest, KeepsNamesAndIdsAndEscapesEverythingElse) {
  EXPECT_EQ(EncodePathSegment("demo-fork-1"), "demo-fork-1");
  EXPECT_EQ(EncodePathSegment("i-0123456789abcdef"), "i-0123456789abcdef");
  EXPECT_EQ(EncodePathSegment("a/../b c"), "a%2F..%2Fb%20c");
}

TEST(UnreachableErrorTest, AMissingSocketSaysForkdIsNotRunningAndHowToStartIt) {
  Result<test::TempDir> dir = test::TempDir::Create();
  FE_ASSERT_OK(dir);
  Status status = UnreachableError(dir->Sub("forkd.sock"), "GET", "/v1/healthz", "Connection");
  EXPECT_EQ(status.code(), ErrorCode::kIo);
  EXPECT_NE(status.message().find("forkd is not running: no socket at " + dir->Sub("forkd.sock")), std::string::npos)
      << status.message();
  EXPECT_NE(status.message().find("forkd --socket"), std::string::npos) << status.message();
}

TEST(UnreachableErrorTest, ASocketNobodyListensOnSaysForkdDoesNotAnswer) {
  Result<test::TempDir> dir = test::TempDir::Create();
  FE_ASSERT_OK(dir);
  std::string path = dir->Sub("stale.sock");
  {  // bound, never listened on, closed: the socket file stays behind, as after a crash
    int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ASSERT_GE(fd, 0);
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    path.copy(address.sun_path, sizeof(address.sun_path) - 1);
    ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0) << std::strerror(errno);
    ::close(fd);
  }
  ApiClient client(path);
  Result<nlohmann::json> reply = client.Get("/v1/healthz");
  ASSERT_FALSE(reply.ok());
  EXPECT_EQ(reply.status().code(), ErrorCode::kIo);
  EXPECT_NE(reply.status().message().find("forkd does not answer at " + path), std::string::npos)
      << reply.status().message();
}

// A stand-in server on a Unix socket: proves the client's transport (AF_UNIX, methods, bodies),
// not forkd (that is forkctl_e2e_test).
class ApiClientServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Result<test::TempDir> dir = test::TempDir::Create();
    FE_ASSERT_OK(dir);
    dir_.emplace(std::move(*dir));
    socket_ = dir_->Sub("forkd.sock");
    server_.set_address_family(AF_UNIX);
    server_.Get(R"(/v1/instances/(.+))", [](const httplib::Request& request, httplib::Response& response) {
      response.set_content(nlohmann::json{{"name", request.matches[1].str()}}.dump(), "application/json");
    });
    server_.Post("/v1/instances", [](const httplib::Request& request, httplib::Response& response) {
      response.status = 201;
      response.set_content(request.body, "application/json");  // echo
    });
    server_.Delete("/v1/instances/gone", [](const httplib::Request&, httplib::Response& response) {
      response.status = 404;
      response.set_content(R"({"code":"not_found","message":"no instance 'gone'"})", "application/json");
    });
    server_.Delete("/v1/instances/here",
                   [](const httplib::Request&, httplib::Response& response) { response.status = 204; });
    server_.Get("/v1/garbage", [](const httplib::Request&, httplib::Response& response) {
      response.set_content("{not json", "application/json");
    });
    // A stream whose lines are cut across chunks, as forkd's events may be.
    server_.Get("/v1/stream", [](const httplib::Request&, httplib::Response& response) {
      response.set_chunked_content_provider("application/x-ndjson", [](size_t offset, httplib::DataSink& sink) {
        static const char* const kPieces[] = {"{\"seq\":1}\n{\"se", "q\":2}\n", "\n{\"seq\":3}\n"};
        (void)offset;
        for (const char* piece : kPieces) sink.write(piece, std::strlen(piece));
        sink.done();
        return true;
      });
    });
    server_.Get("/v1/bad-stream", [](const httplib::Request&, httplib::Response& response) {
      response.status = 400;
      response.set_content(R"({"code":"invalid_argument","message":"since: not a number"})", "application/json");
    });
    ASSERT_TRUE(server_.bind_to_port(socket_, 80));
    // bind_to_port also listens: requests queue until the accept loop runs; every test makes one
    // before TearDown stops the server.
    thread_ = std::thread([this] { server_.listen_after_bind(); });
  }

  void TearDown() override {
    server_.stop();
    if (thread_.joinable()) thread_.join();
  }

  std::optional<test::TempDir> dir_;
  std::string socket_;
  httplib::Server server_;
  std::thread thread_;
};

TEST_F(ApiClientServerTest, GetParsesTheJsonReplyAndTheServerDecodesTheEncodedSegment) {
  Result<nlohmann::json> reply = ApiClient(socket_).Get("/v1/instances/" + EncodePathSegment("odd name?"));
  FE_ASSERT_OK(reply);
  EXPECT_EQ((*reply)["name"], "odd name?");
}

TEST_F(ApiClientServerTest, PostSendsTheBodyAsJson) {
  Result<nlohmann::json> reply = ApiClient(socket_).Post("/v1/instances", {{"name", "x"}, {"count", 3}});
  FE_ASSERT_OK(reply);
  EXPECT_EQ(*reply, (nlohmann::json{{"name", "x"}, {"count", 3}}));
}

TEST_F(ApiClientServerTest, DeleteWithNoContentIsNull) {
  Result<nlohmann::json> reply = ApiClient(socket_).Delete("/v1/instances/here");
  FE_ASSERT_OK(reply);
  EXPECT_TRUE(reply->is_null());
}

TEST_F(ApiClientServerTest, AnErrorReplyBecomesTheServersError) {
  Result<nlohmann::json> reply = ApiClient(socket_).Delete("/v1/instances/gone");
  ASSERT_FALSE(reply.ok());
  EXPECT_EQ(reply.status().code(), ErrorCode::kNotFound);
  EXPECT_EQ(reply.status().message(), "no instance 'gone' (not_found, HTTP 404)");
}

TEST_F(ApiClientServerTest, AReplyThatIsNotJsonIsAnInternalError) {
  Result<nlohmann::json> reply = ApiClient(socket_).Get("/v1/garbage");
  ASSERT_FALSE(reply.ok());
  EXPECT_EQ(reply.status().code(), ErrorCode::kInternal);
  EXPECT_NE(reply.status().message().find("is not JSON"), std::string::npos) << reply.status().message();
}

TEST_F(ApiClientServerTest, StreamHandsOverEachLineAsJsonWhateverTheChunksAre) {
  std::vector<int> seqs;
  FE_ASSERT_OK(ApiClient(socket_).Stream("/v1/stream", [&](const nlohmann::json& value) {
    seqs.push_back(value["seq"]);
    return true;
  }));
  EXPECT_EQ(seqs, (std::vector<int>{1, 2, 3}));
}

TEST_F(ApiClientServerTest, StreamStopsWhenTheReceiverSaysSo) {
  int seen = 0;
  FE_ASSERT_OK(ApiClient(socket_).Stream("/v1/stream", [&](const nlohmann::json&) { return ++seen < 2; }));
  EXPECT_EQ(seen, 2);
}

TEST_F(ApiClientServerTest, AStreamRefusedWithAnErrorIsTheServersError) {
  Status refused = ApiClient(socket_).Stream("/v1/bad-stream", [](const nlohmann::json&) { return true; });
  EXPECT_EQ(refused.code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(refused.message(), "since: not a number (invalid_argument, HTTP 400)");
}

}  // namespace
}  // namespace fe::engine::forkctl
