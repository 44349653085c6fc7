// The identity handoff's host side against a test double of the guest agent on a socketpair, and the
// hybrid-vsock CONNECT handshake against a test double of a hypervisor's vsock socket.
#include "hypervisor/identity_handoff.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <cstring>
#include <functional>
#include <optional>
#include <thread>

#include <nlohmann/json.hpp>

#include "tests/support/temp_dir.h"

namespace fe::hypervisor {
namespace {

using namespace std::chrono_literals;
using Json = nlohmann::json;

IdentityHandoff Handoff() {
  IdentityHandoff handoff;
  handoff.identity = NetworkIdentity{"fe0a640005", "02:fe:0a:64:00:05", "10.100.0.5", 16, "10.100.0.1", 174325765};
  handoff.previous_mac = "02:fe:0a:64:00:02";
  handoff.generation = 7;
  return handoff;
}

bool WriteAll(int fd, const std::string& data) {
  size_t done = 0;
  while (done < data.size()) {
    ssize_t wrote = ::write(fd, data.data() + done, data.size() - done);
    if (wrote <= 0) return false;
    done += static_cast<size_t>(wrote);
  }
  return true;
}

std::string ReadLine(int fd) {
  std::string line;
  char c;
  while (::read(fd, &c, 1) == 1 && c != '\n') line += c;
  return line;
}

int64_t NowNs() {
  timespec now{};
  ::clock_gettime(CLOCK_REALTIME, &now);
  return int64_t{now.tv_sec} * 1000000000 + now.tv_nsec;
}

// The guest agent's test double: reads the request, hands it to `answer` and writes what it returns.
class GuestDouble {
 public:
  explicit GuestDouble(std::function<std::string(const Json& request)> answer) {
    int fds[2];
    EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
    host_.reset(fds[0]);
    guest_.reset(fds[1]);
    thread_ = std::thread([this, answer = std::move(answer)] {
      std::string line = ReadLine(guest_.get());
      request_ = Json::parse(line, nullptr, false);
      std::string reply = answer(request_);
      if (!reply.empty()) WriteAll(guest_.get(), reply);
      guest_.reset();  // the agent hangs up after answering (or without answering)
    });
  }
  ~GuestDouble() {
    host_.reset();  // unblocks a guest still reading
    if (thread_.joinable()) thread_.join();
  }
  int host_fd() const { return host_.get(); }
  const Json& request() {
    if (thread_.joinable()) thread_.join();
    return request_;
  }

 private:
  UniqueFd host_, guest_;
  std::thread thread_;
  Json request_;
};

std::string Ack(const Json& request) {
  return Json{{"type", "ack"}, {"version", 1}, {"nonce", request["nonce"]}, {"generation", request["generation"]}}
             .dump() +
         "\n";
}

TEST(IdentityHandoffTest, AcknowledgedHandoffSucceeds) {
  GuestDouble guest(Ack);
  const int64_t before = NowNs();
  Status status = HandOffIdentity(guest.host_fd(), Handoff(), 2s, "guest agent of vm-7");
  ASSERT_TRUE(status.ok()) << status.ToString();
  const Json& request = guest.request();
  EXPECT_EQ(request["type"], "set_identity");
  EXPECT_EQ(request["version"], 1);
  EXPECT_EQ(request["generation"], 7);
  EXPECT_EQ(request["nonce"].get<std::string>().size(), 32u);
  EXPECT_EQ(request["identity"], Json::parse(R"({"mac": "02:fe:0a:64:00:05", "ipv4": "10.100.0.5",
                                                  "prefix_length": 16, "gateway": "10.100.0.1"})"));
  EXPECT_EQ(request["previous_mac"], "02:fe:0a:64:00:02");
  const int64_t host_time = request["host_time"]["realtime_ns"].get<int64_t>();
  EXPECT_GE(host_time, before);
  EXPECT_LE(host_time, NowNs());
  EXPECT_EQ(::fcntl(guest.host_fd(), F_GETFL) & O_NONBLOCK, 0) << "the fd is left blocking";
}

TEST(IdentityHandoffTest, AnswerSplitAcrossWritesAndUnknownFieldsAreFine) {
  GuestDouble guest([](const Json& request) {
    Json ack = {{"type", "ack"}, {"version", 1}, {"nonce", request["nonce"]}, {"generation", 7}, {"applied_in_ms", 12}};
    return ack.dump() + "\n";
  });
  EXPECT_TRUE(HandOffIdentity(guest.host_fd(), Handoff(), 2s, "guest").ok());
}

TEST(IdentityHandoffTest, NoncesAreFreshPerRequest) {
  EXPECT_NE(NewNonce(), NewNonce());
  EXPECT_EQ(NewNonce().find_first_not_of("0123456789abcdef"), std::string::npos);
}

TEST(IdentityHandoffTest, WrongNonceIsAnError) {
  GuestDouble guest([](const Json&) {
    return Json{{"type", "ack"}, {"version", 1}, {"nonce", "00000000000000000000000000000000"}, {"generation", 7}}
               .dump() +
           "\n";
  });
  Status status = HandOffIdentity(guest.host_fd(), Handoff(), 2s, "guest agent of vm-7");
  ASSERT_FALSE(status.ok());
  EXPECT_EQ(status.code(), ErrorCode::kIo);
  EXPECT_NE(status.message().find("nonce"), std::string::npos) << status.ToString();
  EXPECT_NE(status.message().find("guest agent of vm-7"), std::string::npos) << status.ToString();
}

TEST(IdentityHandoffTest, WrongGenerationIsAnError) {
  GuestDouble guest([](const Json& request) {
    return Json{{"type", "ack"}, {"version", 1}, {"nonce", request["nonce"]}, {"generation", 6}}.dump() + "\n";
  });
  Status status = HandOffIdentity(guest.host_fd(), Handoff(), 2s, "guest");
  EXPECT_NE(status.message().find("generation 6 instead of 7"), std::string::npos) << status.ToString();
}

TEST(IdentityHandoffTest, GuestErrorIsReportedWithItsMessage) {
  GuestDouble guest([](const Json& request) {
    return Json{{"type", "error"},
                {"version", 1},
                {"nonce", request["nonce"]},
                {"code", "apply_failed"},
                {"message", "RTNETLINK answers: File exists"}}
               .dump() +
           "\n";
  });
  Status status = HandOffIdentity(guest.host_fd(), Handoff(), 2s, "guest agent of vm-7");
  ASSERT_FALSE(status.ok());
  EXPECT_EQ(status.code(), ErrorCode::kIo);
  EXPECT_NE(status.message().find("apply_failed: RTNETLINK answers: File exists"), std::string::npos)
      << status.ToString();
}

TEST(IdentityHandoffTest, UnsupportedVersionIsUnsupported) {
  GuestDouble guest([](const Json& request) {
    return Json{{"type", "error"}, {"nonce", request["nonce"]}, {"code", "unsupported_version"}, {"supported", {2}}}
               .dump() +
           "\n";
  });
  EXPECT_EQ(HandOffIdentity(guest.host_fd(), Handoff(), 2s, "guest").code(), ErrorCode::kUnsupported);
}

TEST(IdentityHandoffTest, SilentGuestTimesOut) {
  GuestDouble guest([](const Json&) {
    std::this_thread::sleep_for(1s);
    return std::string();
  });
  const auto started = std::chrono::steady_clock::now();
  Status status = HandOffIdentity(guest.host_fd(), Handoff(), 200ms, "guest agent of vm-7");
  const auto took = std::chrono::steady_clock::now() - started;
  ASSERT_FALSE(status.ok());
  EXPECT_EQ(status.sys_errno(), ETIMEDOUT) << status.ToString();
  EXPECT_EQ(status.code(), ErrorCode::kTimedOut) << status.ToString();  // 504 in forkd, not 500
  EXPECT_NE(status.message().find("200 ms"), std::string::npos) << status.ToString();
  EXPECT_GE(took, 190ms);
  EXPECT_LT(took, 900ms);
}

TEST(IdentityHandoffTest, GarbageIsAProtocolError) {
  GuestDouble guest([](const Json&) { return std::string("hello\x01 world\n"); });
  Status status = HandOffIdentity(guest.host_fd(), Handoff(), 2s, "guest");
  ASSERT_FALSE(status.ok());
  EXPECT_EQ(status.code(), ErrorCode::kIo);
  EXPECT_NE(status.message().find("not a JSON object: 'hello? world'"), std::string::npos) << status.ToString();
}

TEST(IdentityHandoffTest, UnexpectedTypeOrVersionIsAProtocolError) {
  GuestDouble typed([](const Json& request) {
    return Json{{"type", "hello"}, {"nonce", request["nonce"]}}.dump() + "\n";
  });
  EXPECT_NE(HandOffIdentity(typed.host_fd(), Handoff(), 2s, "guest").message().find("unexpected answer type"),
            std::string::npos);
  GuestDouble versioned([](const Json& request) {
    return Json{{"type", "ack"}, {"version", 2}, {"nonce", request["nonce"]}, {"generation", 7}}.dump() + "\n";
  });
  EXPECT_NE(HandOffIdentity(versioned.host_fd(), Handoff(), 2s, "guest").message().find("version 2"),
            std::string::npos);
}

TEST(IdentityHandoffTest, ClosedConnectionIsAnError) {
  GuestDouble guest([](const Json&) { return std::string(); });  // reads the request, hangs up
  Status status = HandOffIdentity(guest.host_fd(), Handoff(), 2s, "guest");
  ASSERT_FALSE(status.ok());
  EXPECT_EQ(status.code(), ErrorCode::kIo) << status.ToString();
  EXPECT_NE(status.message().find("closed the connection"), std::string::npos) << status.ToString();
}

TEST(IdentityHandoffTest, OverlongLineIsRefused) {
  GuestDouble guest([](const Json&) { return std::string(kMaxLineBytes + 10000, 'x'); });
  Status status = HandOffIdentity(guest.host_fd(), Handoff(), 2s, "guest");
  EXPECT_NE(status.message().find("longer than"), std::string::npos) << status.ToString();
}

// ---- hybrid vsock ----

// A hypervisor's vsock Unix socket: accepts one connection and runs `session` on it.
class VsockDouble {
 public:
  VsockDouble(const std::string& path, std::function<void(int fd)> session) : path_(path) {
    listener_.reset(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::strncpy(address.sun_path, path.c_str(), sizeof(address.sun_path) - 1);
    EXPECT_EQ(::bind(listener_.get(), reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);
    EXPECT_EQ(::listen(listener_.get(), 4), 0);
    thread_ = std::thread([this, session = std::move(session)] {
      UniqueFd connection(::accept4(listener_.get(), nullptr, nullptr, SOCK_CLOEXEC));
      if (connection) session(connection.get());
    });
  }
  ~VsockDouble() {
    ::shutdown(listener_.get(), SHUT_RDWR);
    if (thread_.joinable()) thread_.join();
  }

 private:
  std::string path_;
  UniqueFd listener_;
  std::thread thread_;
};

class HybridVsockTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Result<fe::test::TempDir> dir = fe::test::TempDir::Create();
    ASSERT_TRUE(dir.ok());
    dir_.emplace(std::move(*dir));
    path_ = dir_->Sub("vsock.sock");
  }
  std::optional<fe::test::TempDir> dir_;
  std::string path_;
};

TEST_F(HybridVsockTest, ConnectHandshakeThenTheGuestStream) {
  std::string command;
  VsockDouble hypervisor(path_, [&](int fd) {
    command = ReadLine(fd);
    // The OK line and the guest's first bytes arrive together: none of the latter may be lost.
    WriteAll(fd, "OK 1073741824\nfirst guest line\n");
    // Then act as the guest agent.
    std::string request = ReadLine(fd);
    WriteAll(fd, Ack(Json::parse(request)));
  });
  Result<UniqueFd> stream = ConnectHybridVsock(path_, kIdentityVsockPort, 2s);
  ASSERT_TRUE(stream.ok()) << stream.status().ToString();
  EXPECT_EQ(ReadLine(stream->get()), "first guest line");
  EXPECT_EQ(::fcntl(stream->get(), F_GETFL) & O_NONBLOCK, 0);
  Status handed = HandOffIdentity(stream->get(), Handoff(), 2s, "guest agent on vsock port 10240");
  EXPECT_TRUE(handed.ok()) << handed.ToString();
  EXPECT_EQ(command, "CONNECT 10240");
}

TEST_F(HybridVsockTest, NoListenerInTheGuestClosesTheConnection) {
  VsockDouble hypervisor(path_, [](int fd) { ReadLine(fd); });  // firecracker just closes
  Result<UniqueFd> stream = ConnectHybridVsock(path_, 52, 2s);
  ASSERT_FALSE(stream.ok());
  EXPECT_EQ(stream.status().code(), ErrorCode::kIo);
  EXPECT_NE(stream.status().message().find("closed the connection"), std::string::npos) << stream.status().ToString();
}

TEST_F(HybridVsockTest, UnexpectedAnswerIsAnError) {
  VsockDouble hypervisor(path_, [](int fd) {
    ReadLine(fd);
    WriteAll(fd, "ERR no such port\n");
  });
  Result<UniqueFd> stream = ConnectHybridVsock(path_, 52, 2s);
  ASSERT_FALSE(stream.ok());
  EXPECT_NE(stream.status().message().find("'ERR no such port'"), std::string::npos) << stream.status().ToString();
}

TEST_F(HybridVsockTest, SilentHypervisorTimesOut) {
  VsockDouble hypervisor(path_, [](int fd) {
    ReadLine(fd);
    std::this_thread::sleep_for(600ms);
  });
  Result<UniqueFd> stream = ConnectHybridVsock(path_, 52, 150ms);
  ASSERT_FALSE(stream.ok());
  EXPECT_EQ(stream.status().sys_errno(), ETIMEDOUT) << stream.status().ToString();
}

TEST_F(HybridVsockTest, MissingSocketIsNotFound) {
  Result<UniqueFd> stream = ConnectHybridVsock(path_, 52, 150ms);
  ASSERT_FALSE(stream.ok());
  EXPECT_EQ(stream.status().code(), ErrorCode::kNotFound) << stream.status().ToString();
}

}  // namespace
}  // namespace fe::hypervisor
