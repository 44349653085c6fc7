#include "tests/support/tcp_port.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fstream>
#include <mutex>
#include <random>
#include <set>

namespace fe::test {
namespace {

// The lowest port the kernel hands out for outgoing connections and for bind(0). A port taken
// from below it cannot be taken in the meantime by one of the many connections tests make
// (etcd members dialling each other, HTTP clients): only by a process that chose it on purpose.
int LowestEphemeralPort() {
  std::ifstream range("/proc/sys/net/ipv4/ip_local_port_range");
  int low = 0;
  if (!(range >> low)) return 32768;
  return low;
}

bool Bindable(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return false;
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_ANY);  // free on every address, the bridge's too
  address.sin_port = htons(static_cast<uint16_t>(port));
  const bool bound = ::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0;
  ::close(fd);
  return bound;
}

}  // namespace

int FreeTcpPort() {
  static std::mutex mutex;
  static std::set<int> handed_out;  // one process never gets the same port twice
  static std::mt19937 random{std::random_device{}()};
  constexpr int kLowest = 10000;
  const int below = LowestEphemeralPort();
  if (below <= kLowest + 100) return -1;
  std::uniform_int_distribution<int> candidates(kLowest, below - 1);
  std::lock_guard lock(mutex);
  for (int attempt = 0; attempt < 200; ++attempt) {
    const int port = candidates(random);
    if (handed_out.contains(port) || !Bindable(port)) continue;
    handed_out.insert(port);
    return port;
  }
  return -1;
}

}  // namespace fe::test
