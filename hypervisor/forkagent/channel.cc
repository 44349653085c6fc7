#include "hypervisor/forkagent/channel.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/vm_sockets.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <thread>

#include "hypervisor/forkagent/log.h"
#include "hypervisor/forkagent/wire.h"

namespace fe::hypervisor::forkagent {
namespace {

using namespace std::chrono_literals;

// How long to wait before reading again while the host end is not connected.
constexpr auto kDisconnectedRetry = 100ms;

std::string ReadSmallFile(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return "";
  char buffer[256];
  ssize_t got = ::read(fd.get(), buffer, sizeof(buffer));
  std::string text = got > 0 ? std::string(buffer, static_cast<size_t>(got)) : "";
  while (!text.empty() && (text.back() == '\n' || text.back() == '\0')) text.pop_back();
  return text;
}

Status WriteAllPolling(int fd, std::string_view data, std::string_view description) {
  while (!data.empty()) {
    ssize_t wrote = ::write(fd, data.data(), data.size());
    if (wrote > 0) {
      data.remove_prefix(static_cast<size_t>(wrote));
      continue;
    }
    if (wrote < 0 && errno == EINTR) continue;
    if (wrote < 0 && errno != EAGAIN) return Status::FromErrno(errno, "write reply to", description);
    pollfd entry{fd, POLLOUT, 0};
    if (::poll(&entry, 1, 1000) < 0 && errno != EINTR) return Status::FromErrno(errno, "poll", description);
  }
  return Status::Ok();
}

// A virtio-serial port (or any stream whose EOF means "nobody on the other end yet").
class SerialChannel : public Channel {
 public:
  SerialChannel(UniqueFd fd, std::string description)
      : fd_(std::move(fd)), description_(std::move(description)), lines_(kMaxLineBytes) {}

  Result<std::string> ReadLine() override {
    bool said_waiting = false;
    while (true) {
      if (std::optional<std::string> line = lines_.Next()) return *line;
      pollfd entry{fd_.get(), POLLIN, 0};
      if (::poll(&entry, 1, -1) < 0) {
        if (errno == EINTR) continue;
        return Status::FromErrno(errno, "poll", description_);
      }
      char buffer[4096];
      ssize_t got = (entry.revents & POLLIN) != 0 ? ::read(fd_.get(), buffer, sizeof(buffer)) : 0;
      if (got > 0) {
        lines_.Append(std::string_view(buffer, static_cast<size_t>(got)));
        continue;
      }
      if (got < 0 && (errno == EINTR || errno == EAGAIN)) continue;
      if (got < 0) return Status::FromErrno(errno, "read from", description_);
      // EOF or POLLHUP: the host side is not connected. A partial line belonged to a host that left.
      lines_.DropPartial();
      if (!said_waiting) Log("waiting for the host to connect to " + description_);
      said_waiting = true;
      std::this_thread::sleep_for(kDisconnectedRetry);
    }
  }

  Status Write(std::string_view reply) override { return WriteAllPolling(fd_.get(), reply, description_); }

 private:
  UniqueFd fd_;
  std::string description_;
  LineBuffer lines_;
};

class VsockChannel : public Channel {
 public:
  VsockChannel(UniqueFd listener, uint32_t port)
      : listener_(std::move(listener)), description_("vsock port " + std::to_string(port)), lines_(kMaxLineBytes) {}

  Result<std::string> ReadLine() override {
    while (true) {
      if (std::optional<std::string> line = lines_.Next()) return *line;
      if (!connection_) {
        int accepted = ::accept4(listener_.get(), nullptr, nullptr, SOCK_CLOEXEC);
        if (accepted < 0 && (errno == EINTR || errno == ECONNABORTED)) continue;
        if (accepted < 0) return Status::FromErrno(errno, "accept on", description_);
        connection_.reset(accepted);
        Log("host connected on " + description_);
      }
      char buffer[4096];
      ssize_t got = ::read(connection_.get(), buffer, sizeof(buffer));
      if (got > 0) {
        lines_.Append(std::string_view(buffer, static_cast<size_t>(got)));
        continue;
      }
      if (got < 0 && errno == EINTR) continue;
      connection_.reset();  // EOF or a reset: wait for the next connection
      lines_.DropPartial();
    }
  }

  Status Write(std::string_view reply) override {
    if (!connection_) return Status::Io("the host closed " + description_ + " before the reply");
    return WriteAllPolling(connection_.get(), reply, description_);
  }

 private:
  UniqueFd listener_;
  UniqueFd connection_;
  std::string description_;
  LineBuffer lines_;
};

}  // namespace

void LineBuffer::Append(std::string_view bytes) {
  while (!bytes.empty()) {
    size_t newline = bytes.find('\n');
    if (discarding_) {
      if (newline == std::string_view::npos) return;
      discarding_ = false;
      bytes.remove_prefix(newline + 1);
      continue;
    }
    size_t partial_start = pending_.rfind('\n');
    size_t partial = pending_.size() - (partial_start == std::string::npos ? 0 : partial_start + 1);
    size_t take = newline == std::string_view::npos ? bytes.size() : newline;
    if (partial + take > limit_) {
      pending_.resize(pending_.size() - partial);
      ++dropped_lines_;
      discarding_ = newline == std::string_view::npos;
      bytes.remove_prefix(newline == std::string_view::npos ? bytes.size() : newline + 1);
      continue;
    }
    size_t consumed = newline == std::string_view::npos ? bytes.size() : newline + 1;
    pending_.append(bytes.substr(0, consumed));
    bytes.remove_prefix(consumed);
  }
}

std::optional<std::string> LineBuffer::Next() {
  size_t newline = pending_.find('\n');
  if (newline == std::string::npos) return std::nullopt;
  std::string line = pending_.substr(0, newline);
  pending_.erase(0, newline + 1);
  return line;
}

void LineBuffer::DropPartial() {
  size_t last = pending_.rfind('\n');
  pending_.resize(last == std::string::npos ? 0 : last + 1);
  discarding_ = false;
}

Result<std::string> FindVirtioPort(std::string_view name, const std::string& dev_root, const std::string& sys_root) {
  const std::string link = dev_root + "/virtio-ports/" + std::string(name);
  if (::access(link.c_str(), F_OK) == 0) return link;
  const std::string ports = sys_root + "/class/virtio-ports";
  DIR* dir = ::opendir(ports.c_str());
  if (dir != nullptr) {
    std::string found;
    while (dirent* entry = ::readdir(dir)) {
      std::string port = entry->d_name;
      if (port == "." || port == "..") continue;
      if (ReadSmallFile(ports + "/" + port + "/name") == name) {
        found = dev_root + "/" + port;
        break;
      }
    }
    ::closedir(dir);
    if (!found.empty() && ::access(found.c_str(), F_OK) == 0) return found;
  }
  return Status::NotFound("virtio-serial port '" + std::string(name) + "': neither " + link +
                          " nor a port of that name in " + ports);
}

Result<std::unique_ptr<Channel>> OpenSerialChannel(const std::string& name) {
  std::string path = name;
  if (name.find('/') == std::string::npos) {
    bool said_waiting = false;
    while (true) {
      Result<std::string> found = FindVirtioPort(name);
      if (found.ok()) {
        path = *found;
        break;
      }
      if (!said_waiting) Log("waiting for " + found.status().message());
      said_waiting = true;
      std::this_thread::sleep_for(kDisconnectedRetry);
    }
  }
  UniqueFd fd(::open(path.c_str(), O_RDWR | O_NONBLOCK | O_CLOEXEC | O_NOCTTY));
  if (!fd) return Status::FromErrno(errno, "open virtio-serial port", path);
  Log("listening on " + path);
  return SerialChannelOnFd(std::move(fd), path);
}

std::unique_ptr<Channel> SerialChannelOnFd(UniqueFd fd, std::string description) {
  return std::make_unique<SerialChannel>(std::move(fd), std::move(description));
}

Result<std::unique_ptr<Channel>> OpenVsockChannel(uint32_t port) {
  const std::string where = "vsock port " + std::to_string(port);
  UniqueFd fd(::socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) return Status::FromErrno(errno, "socket AF_VSOCK for", where);
  sockaddr_vm address{};
  address.svm_family = AF_VSOCK;
  address.svm_cid = VMADDR_CID_ANY;
  address.svm_port = port;
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0) {
    return Status::FromErrno(errno, "bind", where);
  }
  if (::listen(fd.get(), 4) != 0) return Status::FromErrno(errno, "listen on", where);
  Log("listening on " + where);
  return std::unique_ptr<Channel>(std::make_unique<VsockChannel>(std::move(fd), port));
}

}  // namespace fe::hypervisor::forkagent
