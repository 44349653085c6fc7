// forkagent: the guest side of the identity handoff (see hypervisor/identity_handoff.h; the wire facts both sides share
// are in wire.h). Runs in the guest as root, waits for the host's set_identity requests on a virtio-serial port
// (default) or a vsock port, applies each (network through rtnetlink, clock through clock_settime) and answers. A guest
// that is never sent anything is never changed.
//
//   forkagent [--channel serial|vsock] [--port NAME|PATH] [--vsock-port N] [--once] [--log]
//
// --once handles one request and exits: 0 when it was acknowledged, 1 when it was answered with an
// error. Exit 2: bad usage; 3: the channel failed for good.
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "hypervisor/forkagent/agent.h"
#include "hypervisor/forkagent/channel.h"
#include "hypervisor/forkagent/filesystem_freeze.h"
#include "hypervisor/forkagent/log.h"
#include "hypervisor/forkagent/network_apply.h"
#include "hypervisor/forkagent/wire.h"

namespace {

constexpr char kUsage[] =
    "usage: forkagent [--channel serial|vsock] [--port NAME|PATH] [--vsock-port N] [--once] [--log]\n"
    "  --channel     serial (a virtio-serial port, the default) or vsock\n"
    "  --port        the virtio-serial port's name or device path (default org.forkengine.identity.0)\n"
    "  --vsock-port  the vsock port to listen on (default 10240)\n"
    "  --once        handle one request, then exit 0 if it was acknowledged, else 1\n"
    "  --log         log each event on stderr\n";

struct Options {
  bool vsock = false;
  std::string port{fe::hypervisor::forkagent::kIdentitySerialPortName};
  uint32_t vsock_port = fe::hypervisor::forkagent::kIdentityVsockPort;
  bool once = false;
  bool log = false;
};

bool ParseOptions(int argc, char** argv, Options& options) {
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    auto value = [&]() -> const char* { return i + 1 < argc ? argv[++i] : nullptr; };
    if (arg == "--once") {
      options.once = true;
    } else if (arg == "--log") {
      options.log = true;
    } else if (arg == "--channel") {
      const char* channel = value();
      if (channel == nullptr || (std::string_view(channel) != "serial" && std::string_view(channel) != "vsock")) {
        return false;
      }
      options.vsock = std::string_view(channel) == "vsock";
    } else if (arg == "--port") {
      const char* port = value();
      if (port == nullptr || *port == '\0') return false;
      options.port = port;
    } else if (arg == "--vsock-port") {
      const char* port = value();
      char* end = nullptr;
      unsigned long number = port == nullptr ? 0 : std::strtoul(port, &end, 10);
      if (port == nullptr || *end != '\0' || number == 0 || number > 0xffffffffUL) return false;
      options.vsock_port = static_cast<uint32_t>(number);
    } else {
      return false;
    }
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace fe::hypervisor::forkagent;
  Options options;
  if (!ParseOptions(argc, argv, options)) {
    std::fputs(kUsage, stderr);
    return 2;
  }
  if (options.log) EnableLog();

  fe::Result<std::unique_ptr<Channel>> channel =
      options.vsock ? OpenVsockChannel(options.vsock_port) : OpenSerialChannel(options.port);
  if (!channel.ok()) {
    std::fprintf(stderr, "forkagent: %s\n", channel.status().message().c_str());
    return 3;
  }
  SystemApplier applier;
  SystemFilesystemFreezer freezer;
  Agent agent(applier, &freezer);
  while (true) {
    fe::Result<std::string> line = (*channel)->ReadLine();
    if (!line.ok()) {
      std::fprintf(stderr, "forkagent: %s\n", line.status().message().c_str());
      return 3;
    }
    HandledRequest handled = agent.Handle(*line);
    Log(handled.summary);
    if (fe::Status sent = (*channel)->Write(handled.reply); !sent.ok()) Log(sent.message());
    if (options.once) return handled.acknowledged ? 0 : 1;
  }
}
