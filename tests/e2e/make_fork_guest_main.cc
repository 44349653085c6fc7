// fe-e2e-guest DIR [MEMORY_MIB] [FORKAGENT]: writes the end-to-end test's guest (tests/e2e/fork_guest.h)
// into DIR (created), for forkbench --e2e and for trying the guest by hand.
#include <sys/stat.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "tests/e2e/fork_guest.h"

int main(int argc, char** argv) {
  if (argc < 2 || argc > 4) {
    std::fprintf(stderr, "usage: fe-e2e-guest DIR [MEMORY_MIB (256)] [FORKAGENT (%s)]\n", FE_FORKAGENT);
    return 2;
  }
  const std::string dir = argv[1];
  const uint64_t memory_mib = argc > 2 ? std::strtoull(argv[2], nullptr, 10) : 256;
  const std::string forkagent = argc > 3 ? argv[3] : FE_FORKAGENT;
  if (memory_mib == 0 || dir.empty() || dir[0] != '/') {
    std::fprintf(stderr, "fe-e2e-guest: DIR must be absolute and MEMORY_MIB a positive number\n");
    return 2;
  }
  if (::mkdir(dir.c_str(), 0755) != 0) {
    std::fprintf(stderr, "fe-e2e-guest: mkdir %s: %s\n", dir.c_str(), std::strerror(errno));
    return 1;
  }
  fe::Status made = fe::e2e::MakeForkGuest(dir, memory_mib, forkagent, FE_GUEST_DIRTIER);
  if (!made.ok()) {
    std::fprintf(stderr, "fe-e2e-guest: %s\n", made.ToString().c_str());
    return 1;
  }
  std::printf("%s\n", dir.c_str());
  return 0;
}
