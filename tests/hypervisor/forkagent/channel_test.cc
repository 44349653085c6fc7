// The channel's line splitting, the virtio-serial port lookup without udev, and a serial-style
// channel reading and answering over a socketpair.
#include "hypervisor/forkagent/channel.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "tests/support/temp_dir.h"

namespace fe::hypervisor::forkagent {
namespace {

TEST(ForkagentLineBufferTest, SplitsLinesAcrossAppends) {
  LineBuffer lines(100);
  lines.Append("{\"a\"");
  EXPECT_FALSE(lines.Next().has_value());
  lines.Append(": 1}\n{\"b\": 2}\n{\"c\"");
  EXPECT_EQ(lines.Next(), "{\"a\": 1}");
  EXPECT_EQ(lines.Next(), "{\"b\": 2}");
  EXPECT_FALSE(lines.Next().has_value());
  lines.Append(": 3}\n");
  EXPECT_EQ(lines.Next(), "{\"c\": 3}");
}

TEST(ForkagentLineBufferTest, DropPartialForgetsOnlyTheUnfinishedLine) {
  LineBuffer lines(100);
  lines.Append("done\nhalf of a li");
  lines.DropPartial();
  lines.Append("next\n");
  EXPECT_EQ(lines.Next(), "done");
  EXPECT_EQ(lines.Next(), "next");
  EXPECT_FALSE(lines.Next().has_value());
}

TEST(ForkagentLineBufferTest, OversizedLinesAreDroppedWholeAndCounted) {
  LineBuffer lines(8);
  lines.Append("12345");
  lines.Append("6789");       // over the limit, no newline yet: dropped, discarding until '\n'
  lines.Append("abc\nok\n");  // the rest of the long line, then a good one
  lines.Append("0123456789\nfine\n");
  EXPECT_EQ(lines.Next(), "ok");
  EXPECT_EQ(lines.Next(), "fine");
  EXPECT_FALSE(lines.Next().has_value());
  EXPECT_EQ(lines.dropped_lines(), 2u);
}

void WriteFile(const std::string& path, const std::string& content) {
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  std::ofstream(path) << content;
}

TEST(ForkagentVirtioPortTest, FindsThePortByItsSysfsNameWithoutUdev) {
  Result<test::TempDir> dir = test::TempDir::Create();
  ASSERT_TRUE(dir.ok()) << dir.status().ToString();
  const std::string dev = dir->Sub("dev"), sys = dir->Sub("sys");
  WriteFile(sys + "/class/virtio-ports/vport1p1/name", "org.other\n");
  WriteFile(sys + "/class/virtio-ports/vport1p2/name", "org.forkengine.identity.0\n");
  Result<std::string> missing = FindVirtioPort("org.forkengine.identity.0", dev, sys);
  EXPECT_EQ(missing.status().code(), ErrorCode::kNotFound) << "the sysfs name alone is not enough: no device node";
  WriteFile(dev + "/vport1p2", "");
  Result<std::string> found = FindVirtioPort("org.forkengine.identity.0", dev, sys);
  ASSERT_TRUE(found.ok()) << found.status().ToString();
  EXPECT_EQ(*found, dev + "/vport1p2");
}

TEST(ForkagentVirtioPortTest, PrefersTheUdevLink) {
  Result<test::TempDir> dir = test::TempDir::Create();
  ASSERT_TRUE(dir.ok()) << dir.status().ToString();
  WriteFile(dir->Sub("dev/virtio-ports/org.forkengine.identity.0"), "");
  Result<std::string> found = FindVirtioPort("org.forkengine.identity.0", dir->Sub("dev"), dir->Sub("sys"));
  ASSERT_TRUE(found.ok()) << found.status().ToString();
  EXPECT_EQ(*found, dir->Sub("dev/virtio-ports/org.forkengine.identity.0"));
  Result<std::string> other = FindVirtioPort("org.other", dir->Sub("dev"), dir->Sub("sys"));
  EXPECT_EQ(other.status().code(), ErrorCode::kNotFound);
  EXPECT_NE(other.status().message().find("org.other"), std::string::npos);
}

TEST(ForkagentSerialChannelTest, ReadsLinesWrittenInPiecesAndWritesReplies) {
  int fds[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
  UniqueFd host(fds[0]);
  ::fcntl(fds[1], F_SETFL, O_NONBLOCK);  // as the agent opens the port
  std::unique_ptr<Channel> channel = SerialChannelOnFd(UniqueFd(fds[1]), "socketpair");
  ASSERT_EQ(::write(host.get(), "first", 5), 5);
  ASSERT_EQ(::write(host.get(), " line\nsecond\n", 13), 13);
  EXPECT_EQ(channel->ReadLine().value(), "first line");
  EXPECT_EQ(channel->ReadLine().value(), "second");
  ASSERT_TRUE(channel->Write("reply\n").ok());
  char buffer[16] = {};
  EXPECT_EQ(::read(host.get(), buffer, sizeof(buffer)), 6);
  EXPECT_STREQ(buffer, "reply\n");
}

}  // namespace
}  // namespace fe::hypervisor::forkagent
