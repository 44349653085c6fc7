#include "engine/vm/process_memory.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cstring>

#include <gtest/gtest.h>

#include "engine/vm/process_stat.h"

namespace fe::engine::vm {
namespace {

TEST(ProcessMemoryTest, ParsesTheSumsOfSmapsRollup) {
  constexpr char kText[] =
      "55d4c0a00000-7ffd1f5fe000 ---p 00000000 00:00 0                          [rollup]\n"
      "Rss:              295040 kB\n"
      "Pss:               75264 kB\n"
      "Pss_Anon:          40000 kB\n"
      "Shared_Clean:     250000 kB\n"
      "Shared_Dirty:          4 kB\n"
      "Private_Clean:      1036 kB\n"
      "Private_Dirty:     44000 kB\n"
      "Anonymous:         44000 kB\n"
      "SwapPss:              12 kB\n";
  Result<ProcessMemory> memory = ParseSmapsRollup(kText, "test");
  ASSERT_TRUE(memory.ok()) << memory.status().ToString();
  EXPECT_EQ(memory->rss_bytes, 295040u * 1024);
  EXPECT_EQ(memory->pss_bytes, 75264u * 1024);
  EXPECT_EQ(memory->anonymous_bytes, 44000u * 1024);
  EXPECT_EQ(memory->shared_bytes, 250004u * 1024);
  EXPECT_EQ(memory->private_bytes, 45036u * 1024);
  EXPECT_EQ(memory->swap_pss_bytes, 12u * 1024);
  EXPECT_EQ(ParseSmapsRollup("Pss: 1 kB\n", "x").status().code(), ErrorCode::kInvalidArgument);
}

TEST(ProcessMemoryTest, ReadsThisProcessAndSeesPagesItWrites) {
  Result<ProcStat> stat = ReadProcStat(::getpid());
  ASSERT_TRUE(stat.ok()) << stat.status().ToString();
  const ProcessRecord self{::getpid(), stat->start_time, ""};
  Result<ProcessMemory> before = ReadProcessMemory(self);
  ASSERT_TRUE(before.ok()) << before.status().ToString();
  constexpr size_t kBytes = 32 << 20;
  void* block = ::mmap(nullptr, kBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(block, MAP_FAILED);
  std::memset(block, 0x5a, kBytes);
  Result<ProcessMemory> after = ReadProcessMemory(self);
  ::munmap(block, kBytes);
  ASSERT_TRUE(after.ok()) << after.status().ToString();
  EXPECT_GE(after->anonymous_bytes, before->anonymous_bytes + kBytes / 2);
  EXPECT_GE(after->rss_bytes, after->anonymous_bytes);

  // Another start time is another process: never measured as this one.
  EXPECT_EQ(ReadProcessMemory(ProcessRecord{::getpid(), stat->start_time + 1, ""}).status().code(),
            ErrorCode::kNotFound);
}

}  // namespace
}  // namespace fe::engine::vm
