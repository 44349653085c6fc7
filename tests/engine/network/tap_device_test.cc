// TAP devices made and removed with ioctls and rtnetlink, each test inside a network namespace of its
// own (unshare(CLONE_NEWNET) on a thread: a namespace is per thread, and the `ip` processes that read
// the result back inherit it). Skips without /dev/net/tun.
#include "engine/network/tap_device.h"

#include <gtest/gtest.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <sched.h>
#include <sys/ioctl.h>

#include <cstring>
#include <functional>
#include <thread>

#include <nlohmann/json.hpp>

#include "base/process.h"
#include "base/unique_fd.h"
#include "tests/support/network_namespace.h"

namespace fe::engine::network {
namespace {

using Json = nlohmann::json;

// `ip -j -d link show NAME` as JSON (the first entry), or null when there is no such device.
Json Link(const std::string& name) {
  Result<ProcessResult> run = RunProcess({"ip", "-j", "-d", "link", "show", name});
  if (!run.ok() || run->exit_code != 0) return Json();
  Json list = Json::parse(run->output, nullptr, false);
  return list.is_array() && !list.empty() ? list[0] : Json();
}

bool IsUp(const Json& link) {
  for (const Json& flag : link.value("flags", Json::array())) {
    if (flag == "UP") return true;
  }
  return false;
}

class TapDeviceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (std::string why = TapUnavailableReason(); !why.empty()) GTEST_SKIP() << why;
  }
  void InNamespace(const std::function<void()>& body) {
    std::string failure = fe::test::RunInNewNetworkNamespace(body);
    if (!failure.empty()) GTEST_SKIP() << failure;
  }
};

TEST_F(TapDeviceTest, CreateMakesAPersistentTapThatIsUp) {
  InNamespace([] {
    Status created = CreateTap("fetest0", "");
    ASSERT_TRUE(created.ok()) << created.ToString();
    EXPECT_TRUE(NetworkDeviceExists("fetest0"));
    Json link = Link("fetest0");
    ASSERT_FALSE(link.is_null());
    EXPECT_EQ(link["linkinfo"].value("info_kind", ""), "tun") << link.dump();
    EXPECT_EQ(link["linkinfo"]["info_data"].value("type", ""), "tap") << link.dump();
    EXPECT_EQ(link["linkinfo"]["info_data"].value("pi", true), false) << link.dump();
    EXPECT_EQ(link["linkinfo"]["info_data"].value("persist", false), true) << link.dump();
    EXPECT_TRUE(IsUp(link)) << link.dump();
  });
}

TEST_F(TapDeviceTest, CreateAttachesTheTapToTheBridge) {
  InNamespace([] {
    Result<ProcessResult> bridge = RunProcess({"ip", "link", "add", "febr0", "type", "bridge"});
    ASSERT_TRUE(bridge.ok() && bridge->exit_code == 0);
    Status created = CreateTap("fetest1", "febr0");
    ASSERT_TRUE(created.ok()) << created.ToString();
    Json link = Link("fetest1");
    EXPECT_EQ(link.value("master", ""), "febr0") << link.dump();
    EXPECT_TRUE(IsUp(link)) << link.dump();
    // Again: the TAP is reused and stays a port of the bridge.
    Status again = CreateTap("fetest1", "febr0");
    ASSERT_TRUE(again.ok()) << again.ToString();
    EXPECT_EQ(Link("fetest1").value("master", ""), "febr0");
  });
}

TEST_F(TapDeviceTest, JoinBridgeMakesATapHeldByAProcessAPortAndNamesWhatIsMissing) {
  InNamespace([] {
    Result<ProcessResult> bridge = RunProcess({"ip", "link", "add", "febr1", "type", "bridge"});
    ASSERT_TRUE(bridge.ok() && bridge->exit_code == 0);
    ASSERT_TRUE(CreateTap("fetest5", "").ok());
    EXPECT_EQ(Link("fetest5").value("master", ""), "");
    // As a hypervisor would: the TAP opened and held, so it cannot be made again, only joined.
    UniqueFd held(::open("/dev/net/tun", O_RDWR | O_CLOEXEC));
    ASSERT_GE(held.get(), 0);
    struct ifreq request {};
    std::strncpy(request.ifr_name, "fetest5", IFNAMSIZ - 1);
    request.ifr_flags = IFF_TAP | IFF_NO_PI;
    ASSERT_EQ(::ioctl(held.get(), TUNSETIFF, &request), 0) << std::strerror(errno);

    Status joined = JoinBridge("fetest5", "febr1");
    ASSERT_TRUE(joined.ok()) << joined.ToString();
    EXPECT_EQ(Link("fetest5").value("master", ""), "febr1");
    Status no_bridge = JoinBridge("fetest5", "fe-nobridge");
    EXPECT_EQ(no_bridge.code(), ErrorCode::kNotFound) << no_bridge.ToString();
    EXPECT_NE(no_bridge.message().find("fe-nobridge"), std::string::npos) << no_bridge.ToString();
    Status no_tap = JoinBridge("fe-notap", "febr1");
    EXPECT_EQ(no_tap.code(), ErrorCode::kNotFound) << no_tap.ToString();
    EXPECT_NE(no_tap.message().find("fe-notap"), std::string::npos) << no_tap.ToString();
  });
}

TEST_F(TapDeviceTest, CreateWithAMissingBridgeFailsAndLeavesNoTap) {
  InNamespace([] {
    Status created = CreateTap("fetest2", "fe-nobridge");
    ASSERT_FALSE(created.ok());
    EXPECT_EQ(created.code(), ErrorCode::kNotFound) << created.ToString();
    EXPECT_NE(created.message().find("fe-nobridge"), std::string::npos) << created.ToString();
    EXPECT_FALSE(NetworkDeviceExists("fetest2"));
  });
}

TEST_F(TapDeviceTest, DeleteRemovesTheTapAndIsIdempotent) {
  InNamespace([] {
    ASSERT_TRUE(CreateTap("fetest3", "").ok());
    Status deleted = DeleteTap("fetest3");
    ASSERT_TRUE(deleted.ok()) << deleted.ToString();
    EXPECT_FALSE(NetworkDeviceExists("fetest3"));
    EXPECT_TRUE(Link("fetest3").is_null());
    Status again = DeleteTap("fetest3");
    EXPECT_TRUE(again.ok()) << again.ToString();
  });
}

TEST_F(TapDeviceTest, NamesThatAreEmptyOrTooLongAreRefused) {
  InNamespace([] {
    Status too_long = CreateTap("fe0123456789abcd", "");  // 16 bytes
    EXPECT_EQ(too_long.code(), ErrorCode::kInvalidArgument) << too_long.ToString();
    EXPECT_NE(too_long.message().find("fe0123456789abcd"), std::string::npos);
    EXPECT_EQ(CreateTap("", "").code(), ErrorCode::kInvalidArgument);
    EXPECT_EQ(CreateTap("fe/x", "").code(), ErrorCode::kInvalidArgument);
    EXPECT_EQ(DeleteTap("fe0123456789abcd").code(), ErrorCode::kInvalidArgument);
    Status fifteen = CreateTap("fe0123456789abc", "");  // 15 bytes: the longest name
    EXPECT_TRUE(fifteen.ok()) << fifteen.ToString();
    EXPECT_TRUE(NetworkDeviceExists("fe0123456789abc"));
  });
}

TEST_F(TapDeviceTest, ANameHeldByAnotherKindOfDeviceIsBusy) {
  InNamespace([] {
    Result<ProcessResult> bridge = RunProcess({"ip", "link", "add", "fetest4", "type", "bridge"});
    ASSERT_TRUE(bridge.ok() && bridge->exit_code == 0);
    Status created = CreateTap("fetest4", "");
    EXPECT_EQ(created.code(), ErrorCode::kBusy) << created.ToString();
    EXPECT_EQ(Link("fetest4")["linkinfo"].value("info_kind", ""), "bridge") << "the bridge is left as it was";
  });
}

}  // namespace
}  // namespace fe::engine::network
