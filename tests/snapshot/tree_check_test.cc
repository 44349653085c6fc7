// snapshot/tree_check.h: a guest directory holding a link out of it, a device node or a FIFO is
// refused naming the path; relative links that only go down, sockets, files and directories pass.
#include "snapshot/tree_check.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>

#include <gtest/gtest.h>

#include "tests/support/file_util.h"
#include "tests/support/scratch.h"
#include "tests/support/temp_dir.h"

namespace fe::snapshot {
namespace {

class TreeCheckTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Result<test::TempDir> dir = test::TempDir::Create();
    FE_ASSERT_OK(dir);
    dir_.emplace(std::move(*dir));
    guest_ = dir_->Sub("guest");
    ASSERT_EQ(::mkdir(guest_.c_str(), 0755), 0);
    ASSERT_EQ(::mkdir((guest_ + "/snapshot").c_str(), 0755), 0);
    FE_ASSERT_OK(test::WriteFile(guest_ + "/config.json", "{}"));
    FE_ASSERT_OK(test::WriteFile(guest_ + "/snapshot/state.json", "{}"));
  }
  Status Check() {
    Result<ConfinedDir> dir = ConfinedDir::Open(guest_);
    if (!dir.ok()) return dir.status();
    return CheckGuestTree(*dir);
  }
  void ExpectRefused(const std::string& relative, const std::string& why) {
    Status checked = Check();
    EXPECT_EQ(checked.code(), ErrorCode::kInvalidContent) << checked.ToString();
    EXPECT_NE(checked.message().find(guest_ + "/" + relative), std::string::npos) << checked.message();
    EXPECT_NE(checked.message().find(why), std::string::npos) << checked.message();
  }

  std::optional<test::TempDir> dir_;
  std::string guest_;
};

TEST_F(TreeCheckTest, PlainFilesDirectoriesAndDownwardLinksPass) {
  ASSERT_EQ(::symlink("snapshot/state.json", (guest_ + "/state-link").c_str()), 0);
  ASSERT_EQ(::symlink("state.json", (guest_ + "/snapshot/alias").c_str()), 0);
  FE_EXPECT_OK(Check());
}

TEST_F(TreeCheckTest, AbsoluteLinkIsRefusedNamingItAndItsTarget) {
  ASSERT_EQ(::symlink("/etc/shadow", (guest_ + "/config-link").c_str()), 0);
  ExpectRefused("config-link", "'/etc/shadow'");
}

TEST_F(TreeCheckTest, LinkWithDotDotIsRefusedEvenWhenItWouldStayInside) {
  ASSERT_EQ(::symlink("../config.json", (guest_ + "/snapshot/up").c_str()), 0);
  ExpectRefused("snapshot/up", "'../config.json'");
}

TEST_F(TreeCheckTest, LinkedDirectoryLeadingOutIsRefused) {
  ASSERT_EQ(::symlink(dir_->path().c_str(), (guest_ + "/logs").c_str()), 0);
  ExpectRefused("logs", "leads out of the guest directory");
}

TEST_F(TreeCheckTest, DeviceNodesAndFifosAreRefused) {
  ASSERT_EQ(::mknod((guest_ + "/snapshot/null").c_str(), S_IFCHR | 0600, makedev(1, 3)), 0);
  ExpectRefused("snapshot/null", "character device");
  ASSERT_EQ(::unlink((guest_ + "/snapshot/null").c_str()), 0);
  ASSERT_EQ(::mknod((guest_ + "/disk.raw").c_str(), S_IFBLK | 0600, makedev(7, 0)), 0);
  ExpectRefused("disk.raw", "block device");
  ASSERT_EQ(::unlink((guest_ + "/disk.raw").c_str()), 0);
  ASSERT_EQ(::mkfifo((guest_ + "/pipe").c_str(), 0600), 0);
  ExpectRefused("pipe", "FIFO");
}

TEST_F(TreeCheckTest, SocketsPassAsRuntimeEndpoints) {
  int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  const std::string path = guest_ + "/api.sock";
  ASSERT_LT(path.size(), sizeof(address.sun_path));
  std::memcpy(address.sun_path, path.c_str(), path.size() + 1);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);
  ::close(fd);
  FE_EXPECT_OK(Check());
}

TEST_F(TreeCheckTest, TooDeepATreeIsRefusedRatherThanWalked) {
  std::string path = guest_;
  for (size_t i = 0; i <= kMaxGuestTreeDepth; ++i) {
    path += "/d";
    ASSERT_EQ(::mkdir(path.c_str(), 0755), 0);
  }
  Status checked = Check();
  EXPECT_EQ(checked.code(), ErrorCode::kInvalidContent);
  EXPECT_NE(checked.message().find("nested deeper than"), std::string::npos) << checked.message();
}

TEST(ContainedLinkTargetTest, OnlyRelativeDownwardTargetsStayInside) {
  EXPECT_TRUE(IsContainedLinkTarget("disk.raw"));
  EXPECT_TRUE(IsContainedLinkTarget("snapshot/memory-ranges"));
  EXPECT_TRUE(IsContainedLinkTarget("a/..b/c"));
  EXPECT_FALSE(IsContainedLinkTarget(""));
  EXPECT_FALSE(IsContainedLinkTarget("/dev/sda"));
  EXPECT_FALSE(IsContainedLinkTarget(".."));
  EXPECT_FALSE(IsContainedLinkTarget("a/../../b"));
  EXPECT_FALSE(IsContainedLinkTarget("a/.."));
}

}  // namespace
}  // namespace fe::snapshot
