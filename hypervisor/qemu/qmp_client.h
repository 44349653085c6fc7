// A QMP (QEMU Machine Protocol) client over a Unix socket.
//
// QEMU serves one client at a time per QMP socket, so a client is one connection kept for a whole
// sequence of commands (connect, greeting, qmp_capabilities, then commands). Messages are JSON objects,
// one per line. Each command is sent with an "id" and its reply is matched by it; asynchronous events
// ("STOP", "RESUME", "MIGRATION", "SHUTDOWN", ...) that arrive while waiting for a reply are queued for
// WaitForEvent (the oldest are dropped past kMaxQueuedEvents). Every wait has a deadline.
//
// Errors: a QMP error reply is kUnsupported for CommandNotFound and kIo otherwise, with QEMU's class
// and description; a timeout, a closed connection or a malformed message is kIo. Messages name the
// command and the socket.
//
// Threads: a client belongs to one thread at a time.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "base/status.h"
#include "base/unique_fd.h"

namespace fe::hypervisor::qemu {

class QmpClient {
 public:
  static constexpr size_t kMaxQueuedEvents = 256;
  static constexpr std::chrono::milliseconds kDefaultTimeout{30000};

  // Connects to `socket_path`, retrying while the socket does not exist yet or refuses (QEMU still
  // starting) until `timeout`; reads the greeting and negotiates capabilities.
  static Result<QmpClient> Connect(const std::string& socket_path, std::chrono::milliseconds timeout);

  QmpClient(QmpClient&&) = default;
  QmpClient& operator=(QmpClient&&) = default;

  // Runs `command` (with `arguments`, an object, unless null) and returns its "return" value.
  Result<nlohmann::json> Execute(const std::string& command, const nlohmann::json& arguments = nullptr,
                                 std::chrono::milliseconds timeout = kDefaultTimeout);

  // Execute with `fd` passed along (SCM_RIGHTS), as QMP's getfd and add-fd expect it.
  Result<nlohmann::json> ExecuteWithFd(const std::string& command, const nlohmann::json& arguments, int fd,
                                       std::chrono::milliseconds timeout = kDefaultTimeout);

  // The first queued or arriving event named `name` (the whole event object). Queued events before it
  // of other names stay queued.
  Result<nlohmann::json> WaitForEvent(std::string_view name, std::chrono::milliseconds timeout);
  // Forgets the queued events named `name` (so a later WaitForEvent sees only newer ones).
  void DropQueuedEvents(std::string_view name);
  // Events received and not yet taken by WaitForEvent, oldest first.
  const std::deque<nlohmann::json>& queued_events() const { return events_; }

  // Waits until QEMU closes the connection (after "quit"), reading and queueing what comes before.
  Status WaitForClose(std::chrono::milliseconds timeout);

  // The greeting's {"qemu": {"major", "minor", "micro"}, "package"} object.
  const nlohmann::json& version() const { return version_; }
  const std::string& socket_path() const { return socket_path_; }

 private:
  using Clock = std::chrono::steady_clock;
  QmpClient(UniqueFd fd, std::string socket_path) : fd_(std::move(fd)), socket_path_(std::move(socket_path)) {}

  // `fd` >= 0 travels with the first bytes of the message.
  Status Send(const nlohmann::json& message, std::string_view what, int fd = -1);
  Result<nlohmann::json> Run(const std::string& command, const nlohmann::json& arguments, int fd,
                             std::chrono::milliseconds timeout);
  // The next message; `what` names what is awaited in errors.
  Result<nlohmann::json> Receive(Clock::time_point deadline, std::string_view what);
  void Queue(nlohmann::json event);

  UniqueFd fd_;
  std::string socket_path_;
  std::string buffer_;  // received bytes not yet parsed
  std::deque<nlohmann::json> events_;
  nlohmann::json version_;
  uint64_t next_id_ = 1;
};

}  // namespace fe::hypervisor::qemu
