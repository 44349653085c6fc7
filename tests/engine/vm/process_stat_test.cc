// Parsing /proc/<pid>/stat: command names with spaces and parentheses, this process's own line, and
// malformed text.
#include "engine/vm/process_stat.h"

#include <unistd.h>

#include <string>

#include <gtest/gtest.h>

namespace fe::engine::vm {
namespace {

// A stat line of `comm` in state `state` whose field 22 (start time) is `start_time`: fields 4..21
// are 0, and fields after 22 follow as the kernel writes them.
std::string StatLine(const std::string& comm, char state, const std::string& start_time) {
  std::string line = "4242 (";
  line.append(comm).append(") ").push_back(state);
  for (int field = 4; field <= 21; ++field) line.append(" ").append(std::to_string(field * 10));
  line.append(" ").append(start_time);
  for (int field = 23; field <= 52; ++field) line.append(" 7");
  return line.append("\n");
}

TEST(ProcessStatTest, CountsFieldsFromTheLastParenthesisOfTheCommandName) {
  Result<ProcStat> stat = ParseProcStat(StatLine("a) (b c) S 1 2", 'S', "987654321"), "test");
  ASSERT_TRUE(stat.ok()) << stat.status().ToString();
  EXPECT_EQ(stat->state, 'S');
  EXPECT_EQ(stat->start_time, 987654321u);
}

TEST(ProcessStatTest, CpuTicksAreUserAndSystemTimeTogether) {
  Result<ProcStat> stat = ParseProcStat(StatLine("qemu", 'S', "5"), "test");
  ASSERT_TRUE(stat.ok()) << stat.status().ToString();
  EXPECT_EQ(stat->cpu_ticks, 140u + 150u);  // fields 14 and 15 of StatLine
  Result<ProcStat> self = ReadProcStat(::getpid());
  ASSERT_TRUE(self.ok()) << self.status().ToString();
  volatile uint64_t spin = 0;
  for (uint64_t i = 0; i < 400'000'000 && ReadProcStat(::getpid())->cpu_ticks == self->cpu_ticks; ++i) spin = spin + i;
  EXPECT_GT(ReadProcStat(::getpid())->cpu_ticks, self->cpu_ticks) << "this process's CPU time grows as it runs";
}

TEST(ProcessStatTest, ReadsTheZombieState) {
  Result<ProcStat> stat = ParseProcStat(StatLine("qemu-system-x86", 'Z', "55"), "test");
  ASSERT_TRUE(stat.ok()) << stat.status().ToString();
  EXPECT_EQ(stat->state, 'Z');
  EXPECT_EQ(stat->start_time, 55u);
}

TEST(ProcessStatTest, ReadsThisProcessWithTheStartTimeItsChildrenComeAfter) {
  Result<ProcStat> self = ReadProcStat(::getpid());
  ASSERT_TRUE(self.ok()) << self.status().ToString();
  EXPECT_EQ(self->state, 'R');
  Result<ProcStat> parent = ReadProcStat(::getppid());
  ASSERT_TRUE(parent.ok()) << parent.status().ToString();
  EXPECT_LE(parent->start_time, self->start_time);
}

TEST(ProcessStatTest, MissingProcessIsNotFound) {
  // pid_max is at most 2^22: this pid never exists.
  Result<ProcStat> stat = ReadProcStat(1 << 23);
  ASSERT_FALSE(stat.ok());
  EXPECT_EQ(stat.status().code(), ErrorCode::kNotFound) << stat.status().ToString();
}

TEST(ProcessStatTest, RejectsLinesWithoutCommandNameEnd) {
  Result<ProcStat> stat = ParseProcStat("4242 (cut", "/proc/4242/stat");
  ASSERT_FALSE(stat.ok());
  EXPECT_EQ(stat.status().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(stat.status().message().find("/proc/4242/stat"), std::string::npos) << stat.status().ToString();
}

TEST(ProcessStatTest, RejectsLinesShorterThanTheStartTime) {
  Result<ProcStat> stat = ParseProcStat("4242 (sh) S 1 2 3\n", "test");
  ASSERT_FALSE(stat.ok());
  EXPECT_EQ(stat.status().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(stat.status().message().find("expected at least 22"), std::string::npos) << stat.status().ToString();
}

TEST(ProcessStatTest, RejectsANonNumericStartTime) {
  Result<ProcStat> stat = ParseProcStat(StatLine("sh", 'S', "12x"), "test");
  ASSERT_FALSE(stat.ok());
  EXPECT_NE(stat.status().message().find("'12x'"), std::string::npos) << stat.status().ToString();
}

TEST(ProcessStatTest, RejectsAStateThatIsNotOneLetter) {
  Result<ProcStat> stat = ParseProcStat(StatLine("sh", 'S', "1").replace(10, 1, "SS"), "test");
  ASSERT_FALSE(stat.ok());
  EXPECT_NE(stat.status().message().find("state 'SS'"), std::string::npos) << stat.status().ToString();
}

}  // namespace
}  // namespace fe::engine::vm
