// fe-guest-dirtier MIB RATE_MIB_PER_S: runs inside the end-to-end guest (tests/e2e/fork_guest.h) and
// keeps dirtying RAM the way a busy guest does: it holds MIB MiB of anonymous memory (written once
// with non-zero data) and rewrites one byte in RATE pages' worth of it every second, 100 times a
// second, at pseudo-random pages. Each rewrite dirties a page of the VM's RAM file on the host, which
// is what a live fork's pause has to write back (engine/vm/ram_preflush.h). Runs until killed.
#include <sys/mman.h>
#include <time.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>

namespace {

constexpr uint64_t kPage = 4096;
constexpr int kTicksPerSecond = 100;

uint64_t NowNs() {
  timespec now{};
  ::clock_gettime(CLOCK_MONOTONIC, &now);
  return static_cast<uint64_t>(now.tv_sec) * 1'000'000'000u + static_cast<uint64_t>(now.tv_nsec);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: fe-guest-dirtier MIB RATE_MIB_PER_S\n");
    return 2;
  }
  const uint64_t bytes = std::strtoull(argv[1], nullptr, 10) << 20;
  const uint64_t rate = std::strtoull(argv[2], nullptr, 10) << 20;
  if (bytes == 0) return 2;
  auto* memory = static_cast<unsigned char*>(
      ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0));
  if (memory == MAP_FAILED) {
    std::perror("fe-guest-dirtier: mmap");
    return 1;
  }
  const uint64_t pages = bytes / kPage;
  for (uint64_t page = 0; page < pages; ++page) memory[page * kPage] = 1;
  std::printf("fe-guest-dirtier: %llu MiB held, dirtying %llu MiB/s\n", static_cast<unsigned long long>(bytes >> 20),
              static_cast<unsigned long long>(rate >> 20));
  std::fflush(stdout);
  const uint64_t per_tick = rate / kPage / kTicksPerSecond;
  uint64_t state = 0x9e3779b97f4a7c15u;
  uint64_t next = NowNs();
  for (;;) {
    for (uint64_t i = 0; i < per_tick; ++i) {
      state ^= state << 13;
      state ^= state >> 7;
      state ^= state << 17;
      memory[(state % pages) * kPage] += 1;
    }
    next += 1'000'000'000u / kTicksPerSecond;
    const uint64_t now = NowNs();
    if (next > now) {
      timespec pause{0, static_cast<long>(next - now)};
      ::nanosleep(&pause, nullptr);
    } else {
      next = now;  // behind (a slow TCG guest): the rate is what it can do
    }
  }
}
