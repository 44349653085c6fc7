#include "engine/network/tap_device.h"

#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <optional>

#include "base/unique_fd.h"

// <net/if.h>'s if_nametoindex, declared here: <net/if.h> and <linux/if.h> cannot both be included.
extern "C" unsigned int if_nametoindex(const char* name);

namespace fe::engine::network {
namespace {

constexpr char kTunDevice[] = "/dev/net/tun";

Status CheckName(const std::string& name, std::string_view what) {
  if (name.empty() || name.size() > kMaxTapNameBytes) {
    return Status::InvalidArgument(std::string(what) + " name \"" + name + "\" must be 1 to " +
                                   std::to_string(kMaxTapNameBytes) + " bytes");
  }
  for (char c : name) {
    if (c == '/' || c == ':' || c <= ' ' || c == 0x7f) {
      return Status::InvalidArgument(std::string(what) + " name \"" + name + "\" holds '" + std::string(1, c) +
                                     "', which a network device name cannot");
    }
  }
  return Status::Ok();
}

// One rtnetlink request about link `index`, waiting for the kernel's acknowledgement.
Status LinkRequest(uint16_t type, int index, unsigned flags, unsigned change, std::optional<uint32_t> master,
                   const std::string& what) {
  struct {
    nlmsghdr header;
    ifinfomsg info;
    char attributes[64];
  } request{};
  request.header.nlmsg_len = NLMSG_LENGTH(sizeof(ifinfomsg));
  request.header.nlmsg_type = type;
  request.header.nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
  request.header.nlmsg_seq = 1;
  request.info.ifi_family = AF_UNSPEC;
  request.info.ifi_index = index;
  request.info.ifi_flags = flags;
  request.info.ifi_change = change;
  if (master) {
    auto* attribute =
        reinterpret_cast<rtattr*>(reinterpret_cast<char*>(&request) + NLMSG_ALIGN(request.header.nlmsg_len));
    attribute->rta_type = IFLA_MASTER;
    attribute->rta_len = RTA_LENGTH(sizeof(uint32_t));
    std::memcpy(RTA_DATA(attribute), &*master, sizeof(uint32_t));
    request.header.nlmsg_len = NLMSG_ALIGN(request.header.nlmsg_len) + RTA_ALIGN(attribute->rta_len);
  }
  UniqueFd fd(::socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE));
  if (!fd) return Status::FromErrno(errno, "rtnetlink socket for", what);
  sockaddr_nl kernel{};
  kernel.nl_family = AF_NETLINK;
  if (::sendto(fd.get(), &request, request.header.nlmsg_len, 0, reinterpret_cast<sockaddr*>(&kernel), sizeof(kernel)) <
      0) {
    return Status::FromErrno(errno, "rtnetlink send", what);
  }
  char answer[4096];
  for (;;) {
    const ssize_t got = ::recv(fd.get(), answer, sizeof(answer), 0);
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) return Status::FromErrno(errno, "rtnetlink receive", what);
    int remaining = static_cast<int>(got);
    for (auto* header = reinterpret_cast<nlmsghdr*>(answer); NLMSG_OK(header, remaining);
         header = NLMSG_NEXT(header, remaining)) {
      if (header->nlmsg_type != NLMSG_ERROR) continue;
      const int error = -reinterpret_cast<nlmsgerr*>(NLMSG_DATA(header))->error;
      return error == 0 ? Status::Ok() : Status::FromErrno(error, "rtnetlink", what);
    }
  }
}

int IndexOf(const std::string& name) { return static_cast<int>(if_nametoindex(name.c_str())); }

// TUNSETIFF + TUNSETPERSIST: the persistent TAP `name`, made or reused.
Status MakePersistentTap(const std::string& name) {
  UniqueFd tun(::open(kTunDevice, O_RDWR | O_CLOEXEC));
  if (!tun) return Status::FromErrno(errno, "open", kTunDevice);
  ifreq request{};
  std::memcpy(request.ifr_name, name.c_str(), name.size());
  request.ifr_flags = IFF_TAP | IFF_NO_PI;
  if (::ioctl(tun.get(), TUNSETIFF, &request) != 0) {
    const int error = errno;
    if (error == EBUSY || error == EINVAL) {
      return Status::Busy("TUNSETIFF " + name + ": " + std::strerror(error) +
                          " (a process holds the TAP, or another kind of device has the name)");
    }
    return Status::FromErrno(error, "TUNSETIFF", name);
  }
  if (::ioctl(tun.get(), TUNSETPERSIST, 1) != 0) return Status::FromErrno(errno, "TUNSETPERSIST", name);
  return Status::Ok();
}

Result<uint32_t> BridgeIndex(const std::string& bridge, const std::string& tap) {
  FE_RETURN_IF_ERROR(CheckName(bridge, "bridge"));
  const int index = IndexOf(bridge);
  if (index == 0 && errno == ENODEV) {
    return Status::NotFound("bridge " + bridge + " for TAP " + tap + ": no such network device");
  }
  if (index == 0) return Status::FromErrno(errno, "bridge for TAP " + tap, bridge);
  return static_cast<uint32_t>(index);
}

}  // namespace

Status CreateTap(const std::string& name, const std::string& bridge) {
  FE_RETURN_IF_ERROR(CheckName(name, "TAP"));
  std::optional<uint32_t> master;
  if (!bridge.empty()) {
    Result<uint32_t> index = BridgeIndex(bridge, name);
    if (!index.ok()) return index.status();
    master = *index;
  }
  const bool existed = IndexOf(name) != 0;
  FE_RETURN_IF_ERROR(MakePersistentTap(name));
  const int index = IndexOf(name);
  Status status = index == 0 ? Status::FromErrno(errno, "index of TAP", name) : Status::Ok();
  // Up, and a port of the bridge (setting the master it already has is a no-op).
  if (status.ok()) status = LinkRequest(RTM_NEWLINK, index, IFF_UP, IFF_UP, std::nullopt, "bring up TAP " + name);
  if (status.ok() && master)
    status = LinkRequest(RTM_NEWLINK, index, 0, 0, master, "attach TAP " + name + " to bridge " + bridge);
  if (!status.ok() && !existed) (void)DeleteTap(name);
  return status;
}

Status JoinBridge(const std::string& name, const std::string& bridge) {
  FE_RETURN_IF_ERROR(CheckName(name, "TAP"));
  Result<uint32_t> master = BridgeIndex(bridge, name);
  if (!master.ok()) return master.status();
  const int index = IndexOf(name);
  if (index == 0 && errno == ENODEV) return Status::NotFound("TAP " + name + ": no such network device");
  if (index == 0) return Status::FromErrno(errno, "index of TAP", name);
  return LinkRequest(RTM_NEWLINK, index, 0, 0, *master, "attach TAP " + name + " to bridge " + bridge);
}

Status DeleteTap(const std::string& name) {
  FE_RETURN_IF_ERROR(CheckName(name, "TAP"));
  const int index = IndexOf(name);
  if (index == 0) return errno == ENODEV ? Status::Ok() : Status::FromErrno(errno, "index of TAP", name);
  Status deleted = LinkRequest(RTM_DELLINK, index, 0, 0, std::nullopt, "delete TAP " + name);
  // Removed meanwhile by someone else: what was asked for holds.
  if (!deleted.ok() && IndexOf(name) == 0) return Status::Ok();
  return deleted;
}

bool NetworkDeviceExists(const std::string& name) { return CheckName(name, "device").ok() && IndexOf(name) != 0; }

std::string TapUnavailableReason() {
  if (::access(kTunDevice, R_OK | W_OK) != 0) return std::string(kTunDevice) + ": " + std::strerror(errno);
  return "";
}

}  // namespace fe::engine::network
