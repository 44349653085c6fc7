// Guest RAM collapsed into huge pages: finding the guest RAM mapping in /proc/<pid>/maps, and a real
// collapse (process_madvise MADV_COLLAPSE) of a child process's 256 MiB of anonymous memory written
// as 4 KiB pages, seen in its smaps AnonHugePages.
#include "engine/vm/huge_pages.h"

#include <signal.h>
#include <sys/mman.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <sstream>

#include <gtest/gtest.h>

#include "engine/vm/process_stat.h"

namespace fe::engine::vm {
namespace {

constexpr uint64_t kMiB = 1ull << 20;

TEST(HugePagesTest, GuestRamIsTheLargestAnonymousReadWriteMapping) {
  const std::string maps =
      "55d0c8a00000-55d0c8e00000 r-xp 00000000 fe:01 1234   /usr/bin/qemu-system-x86_64\n"
      "55d0c9e00000-55d0ca000000 rw-p 00000000 00:00 0      [heap]\n"
      "7f0000000000-7f0004000000 rw-p 00000000 00:00 0 \n"                 // 64 MiB: a malloc arena
      "7f1000000000-7f1040200000 rw-p 00000000 00:00 0 \n"                 // 1 GiB + 2 MiB: guest RAM
      "7f2000000000-7f2080000000 ---p 00000000 00:00 0 \n"                 // 2 GiB reserved, no access
      "7f3000000000-7f3080000000 rw-s 00000000 00:05 77     /dev/shm/x\n"  // 2 GiB shared file
      "600000000000-640000000000 rw-p 00000000 00:00 0 \n"                 // 64 TiB: no guest RAM
      "7ffd00000000-7ffd00021000 rw-p 00000000 00:00 0      [stack]\n";
  Result<MemoryRange> ram = FindGuestRamMapping(maps, "maps", 64ull << 30);
  ASSERT_TRUE(ram.ok()) << ram.status().ToString();
  EXPECT_EQ(*ram, (MemoryRange{0x7f1000000000, (1024 + 2) * kMiB}));

  Result<MemoryRange> none =
      FindGuestRamMapping("7f0000000000-7f0004000000 rw-p 00000000 00:00 0\n", "maps of 7", 64ull << 30);
  EXPECT_EQ(none.status().code(), ErrorCode::kNotFound);
  EXPECT_NE(none.status().message().find("maps of 7"), std::string::npos) << none.status().ToString();
}

bool KernelAtLeast(int major, int minor) {
  utsname name{};
  int have_major = 0;
  int have_minor = 0;
  if (::uname(&name) != 0 || std::sscanf(name.release, "%d.%d", &have_major, &have_minor) != 2) return false;
  return have_major > major || (have_major == major && have_minor >= minor);
}

// AnonHugePages of `pid`, in bytes.
uint64_t AnonHugePages(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/smaps_rollup");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("AnonHugePages:", 0) == 0) return std::stoull(line.substr(14)) * 1024;
  }
  return 0;
}

TEST(HugePagesTest, ACollapseTurnsGuestRamWrittenAsSmallPagesIntoHugePages) {
  std::ifstream enabled("/sys/kernel/mm/transparent_hugepage/enabled");
  std::string modes;
  std::getline(enabled, modes);
  if (modes.empty() || modes.find("[never]") != std::string::npos) GTEST_SKIP() << "no transparent huge pages here";
#if defined(__SANITIZE_ADDRESS__)
  GTEST_SKIP() << "under ASan the forked child's allocator regions are anonymous read-write mappings as large as "
                  "its test memory: which one is 'guest RAM' is not this test's to guess";
#endif

  int ready[2];
  ASSERT_EQ(::pipe(ready), 0);
  const pid_t child = ::fork();
  if (child == 0) {
    // 256 MiB written in 4 KiB pages (huge pages off while writing), then made eligible again, as
    // QEMU's guest RAM is after a background snapshot split it.
    const size_t size = 256 * kMiB;
    void* memory = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (memory == MAP_FAILED || ::madvise(memory, size, MADV_NOHUGEPAGE) != 0) ::_exit(1);
    for (size_t offset = 0; offset < size; offset += 4096) static_cast<char*>(memory)[offset] = 1;
    if (::madvise(memory, size, MADV_HUGEPAGE) != 0) ::_exit(1);
    (void)!::write(ready[1], "r", 1);
    ::pause();
    ::_exit(0);
  }
  ::close(ready[1]);
  char byte = 0;
  ASSERT_EQ(::read(ready[0], &byte, 1), 1);
  ::close(ready[0]);
  Result<ProcStat> stat = ReadProcStat(child);
  ASSERT_TRUE(stat.ok()) << stat.status().ToString();
  const ProcessRecord record{child, stat->start_time, ""};
  const uint64_t before = AnonHugePages(child);

  Result<MemoryRange> collapsed = CollapseGuestRamIntoHugePages(record);
  const uint64_t after = AnonHugePages(child);
  ::kill(child, SIGKILL);
  ::waitpid(child, nullptr, 0);
  if (collapsed.status().code() == ErrorCode::kUnsupported) GTEST_SKIP() << collapsed.status().ToString();
  if (!collapsed.ok() && !KernelAtLeast(6, 1)) GTEST_SKIP() << "no MADV_COLLAPSE before Linux 6.1";
  ASSERT_TRUE(collapsed.ok()) << collapsed.status().ToString();
  EXPECT_GE(collapsed->length, 256 * kMiB);
  EXPECT_LT(before, 16 * kMiB) << "the child's memory was written as small pages";
  EXPECT_GE(after, 200 * kMiB) << "most of it is in huge pages now";

  const ProcessRecord gone{child, stat->start_time, ""};
  EXPECT_EQ(CollapseGuestRamIntoHugePages(gone).status().code(), ErrorCode::kNotFound);
}

}  // namespace
}  // namespace fe::engine::vm
