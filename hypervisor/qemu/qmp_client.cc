#include "hypervisor/qemu/qmp_client.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <thread>

namespace fe::hypervisor::qemu {
namespace {

using nlohmann::json;
using std::chrono::milliseconds;

constexpr size_t kMaxMessageBytes = 64 << 20;

std::string Shorten(const std::string& text) { return text.size() <= 200 ? text : text.substr(0, 200) + "..."; }

}  // namespace

Result<QmpClient> QmpClient::Connect(const std::string& socket_path, milliseconds timeout) {
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  if (socket_path.empty() || socket_path.size() >= sizeof address.sun_path) {
    return Status::InvalidArgument("qmp: socket path \"" + socket_path + "\" is empty or longer than " +
                                   std::to_string(sizeof address.sun_path - 1) + " bytes");
  }
  std::memcpy(address.sun_path, socket_path.c_str(), socket_path.size() + 1);

  const Clock::time_point deadline = Clock::now() + timeout;
  milliseconds pause{2};
  UniqueFd fd;
  for (;;) {
    fd.reset(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!fd) return Status::FromErrno(errno, "qmp: socket for", socket_path);
    if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&address), sizeof address) == 0) break;
    const int err = errno;
    if ((err != ENOENT && err != ECONNREFUSED && err != EINTR) || Clock::now() >= deadline) {
      return Status::FromErrno(err, "qmp: connect to", socket_path);
    }
    std::this_thread::sleep_for(pause);
    pause = std::min(pause * 2, milliseconds(50));
  }

  QmpClient client(std::move(fd), socket_path);
  Result<json> greeting = client.Receive(deadline, "the QMP greeting");
  if (!greeting.ok()) return greeting.status();
  if (!greeting->contains("QMP") || !(*greeting)["QMP"].is_object()) {
    return Status::Io("qmp " + socket_path + ": expected a greeting, got " + Shorten(greeting->dump()));
  }
  client.version_ = (*greeting)["QMP"].value("version", json::object());
  // At least a second for the reply, however much of `timeout` the connect took.
  const milliseconds left =
      std::max(milliseconds(1000), std::chrono::duration_cast<milliseconds>(deadline - Clock::now()));
  Result<json> negotiated = client.Execute("qmp_capabilities", nullptr, left);
  if (!negotiated.ok()) return negotiated.status();
  return client;
}

Result<json> QmpClient::Execute(const std::string& command, const json& arguments, milliseconds timeout) {
  return Run(command, arguments, -1, timeout);
}

Result<json> QmpClient::ExecuteWithFd(const std::string& command, const json& arguments, int fd, milliseconds timeout) {
  return Run(command, arguments, fd, timeout);
}

Result<json> QmpClient::Run(const std::string& command, const json& arguments, int fd, milliseconds timeout) {
  const std::string id = "fe-" + std::to_string(next_id_++);
  json message = {{"execute", command}, {"id", id}};
  if (!arguments.is_null()) message["arguments"] = arguments;
  const std::string what = "reply to '" + command + "'";
  FE_RETURN_IF_ERROR(Send(message, what, fd));

  const Clock::time_point deadline = Clock::now() + timeout;
  for (;;) {
    Result<json> received = Receive(deadline, what);
    if (!received.ok()) return received.status();
    json& reply = *received;
    if (reply.contains("event")) {
      Queue(std::move(reply));
      continue;
    }
    if (!reply.contains("id") || reply["id"] != id) continue;  // a stale reply to an abandoned command
    if (reply.contains("return")) return std::move(reply["return"]);
    if (reply.contains("error")) {
      const json& error = reply["error"];
      const std::string error_class = error.value("class", "Error");
      const std::string desc = error.value("desc", error.dump());
      return Status(error_class == "CommandNotFound" ? ErrorCode::kUnsupported : ErrorCode::kIo,
                    "qmp " + socket_path_ + ": '" + command + "' failed: " + error_class + ": " + desc);
    }
    return Status::Io("qmp " + socket_path_ + ": unexpected " + what + ": " + Shorten(reply.dump()));
  }
}

Result<json> QmpClient::WaitForEvent(std::string_view name, milliseconds timeout) {
  for (auto it = events_.begin(); it != events_.end(); ++it) {
    if ((*it)["event"] == name) {
      json event = std::move(*it);
      events_.erase(it);
      return event;
    }
  }
  const std::string what = "event " + std::string(name);
  const Clock::time_point deadline = Clock::now() + timeout;
  for (;;) {
    Result<json> received = Receive(deadline, what);
    if (!received.ok()) return received.status();
    if (!received->contains("event")) continue;  // a stale reply
    if ((*received)["event"] == name) return std::move(*received);
    Queue(std::move(*received));
  }
}

void QmpClient::DropQueuedEvents(std::string_view name) {
  std::erase_if(events_, [name](const json& event) { return event.value("event", "") == name; });
}

Status QmpClient::WaitForClose(milliseconds timeout) {
  const Clock::time_point deadline = Clock::now() + timeout;
  for (;;) {
    Result<json> received = Receive(deadline, "QEMU to close the connection");
    if (!received.ok()) {
      if (!fd_) return Status::Ok();  // Receive closed it at EOF
      return received.status();
    }
    if (received->contains("event")) Queue(std::move(*received));
  }
}

Status QmpClient::Send(const json& message, std::string_view what, int fd) {
  if (!fd_) return Status::Io("qmp " + socket_path_ + ": the connection is closed");
  const std::string line = message.dump() + "\n";
  size_t done = 0;
  while (done < line.size()) {
    iovec chunk{const_cast<char*>(line.data() + done), line.size() - done};
    msghdr header{};
    header.msg_iov = &chunk;
    header.msg_iovlen = 1;
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
    if (fd >= 0 && done == 0) {
      header.msg_control = control;
      header.msg_controllen = sizeof(control);
      cmsghdr* rights = CMSG_FIRSTHDR(&header);
      rights->cmsg_level = SOL_SOCKET;
      rights->cmsg_type = SCM_RIGHTS;
      rights->cmsg_len = CMSG_LEN(sizeof(int));
      std::memcpy(CMSG_DATA(rights), &fd, sizeof(int));
    }
    ssize_t n = ::sendmsg(fd_.get(), &header, MSG_NOSIGNAL);
    if (n > 0) {
      done += static_cast<size_t>(n);
    } else if (n < 0 && errno != EINTR) {
      return Status::FromErrno(errno, "qmp: send for " + std::string(what) + " on", socket_path_);
    }
  }
  return Status::Ok();
}

Result<json> QmpClient::Receive(Clock::time_point deadline, std::string_view what) {
  for (;;) {
    size_t newline = buffer_.find('\n');
    while (newline != std::string::npos) {
      std::string line = buffer_.substr(0, newline);
      buffer_.erase(0, newline + 1);
      if (!line.empty() && line.back() == '\r') line.pop_back();
      if (line.find_first_not_of(" \t") != std::string::npos) {
        json message = json::parse(line, nullptr, /*allow_exceptions=*/false);
        if (message.is_discarded() || !message.is_object()) {
          return Status::Io("qmp " + socket_path_ + ": malformed message while waiting for " + std::string(what) +
                            ": " + Shorten(line));
        }
        return message;
      }
      newline = buffer_.find('\n');
    }
    if (!fd_) return Status::Io("qmp " + socket_path_ + ": the connection is closed");
    if (buffer_.size() > kMaxMessageBytes) {
      return Status::Io("qmp " + socket_path_ + ": a message longer than " + std::to_string(kMaxMessageBytes) +
                        " bytes");
    }

    const auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) {
      return Status::Io("qmp " + socket_path_ + ": timed out waiting for " + std::string(what));
    }
    pollfd entry{fd_.get(), POLLIN, 0};
    const int ready = ::poll(&entry, 1, static_cast<int>(std::min<int64_t>(left.count(), 60000)));
    if (ready < 0 && errno != EINTR) return Status::FromErrno(errno, "qmp: poll", socket_path_);
    if (ready <= 0) continue;

    char chunk[65536];
    const ssize_t n = ::recv(fd_.get(), chunk, sizeof chunk, 0);
    if (n > 0) {
      buffer_.append(chunk, static_cast<size_t>(n));
    } else if (n == 0 || errno == ECONNRESET) {
      fd_.reset();
      return Status::Io("qmp " + socket_path_ + ": QEMU closed the connection while waiting for " + std::string(what));
    } else if (errno != EINTR && errno != EAGAIN) {
      return Status::FromErrno(errno, "qmp: recv from", socket_path_);
    }
  }
}

void QmpClient::Queue(json event) {
  if (events_.size() >= kMaxQueuedEvents) events_.pop_front();
  events_.push_back(std::move(event));
}

}  // namespace fe::hypervisor::qemu
