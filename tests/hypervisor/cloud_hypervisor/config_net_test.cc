#include <gtest/gtest.h>

#include "hypervisor/cloud_hypervisor/config_rewrite.h"
#include "tests/hypervisor/cloud_hypervisor/fixtures.h"
#include "tests/support/scratch.h"

namespace fe::hypervisor::cloud_hypervisor {
namespace {

using test::Fixture;

Json WithNet(const char* net) {
  Json config = Json::object();
  config["net"] = Json::parse(net);
  return config;
}

Json Rewritten(Json config, const NetworkIdentity& target = test::TargetIdentity()) {
  Status status = RewriteNetIdentity(config, test::SourceIdentity(), target, "config.json");
  EXPECT_TRUE(status.ok()) << status.ToString();
  return config;
}

Status RewriteError(Json config) {
  return RewriteNetIdentity(config, test::SourceIdentity(), test::TargetIdentity(), "config.json");
}

TEST(CloudHypervisorConfigNetTest, ReplacesTapMacIpAndMaskWithTheTargetIdentity) {
  Json in = Fixture("snapshot_config.json");
  Json out = Rewritten(in);
  const Json& nic = out["net"][0];
  EXPECT_EQ(nic["tap"], "fe-tap-2");
  EXPECT_EQ(nic["mac"], "02:fe:00:00:00:02");
  EXPECT_EQ(nic["ip"], "10.20.1.1");  // the TAP's host address was the source's gateway
  EXPECT_EQ(nic["mask"], "255.255.255.252");
  EXPECT_FALSE(nic.contains("host_mac"));  // the source TAP's MAC is not handed on
  for (const char* kept : {"id", "mtu", "num_queues", "queue_size", "vhost_mode", "offload_tso"}) {
    EXPECT_EQ(nic[kept], in["net"][0][kept]) << kept;
  }
}

TEST(CloudHypervisorConfigNetTest, MapsTheGuestAddressToTheTargetGuestAddress) {
  Json out = Rewritten(WithNet(R"([{"tap": "fe-tap-1", "ip": "10.20.0.2", "mask": "255.255.255.0"}])"));
  EXPECT_EQ(out["net"][0]["ip"], "10.20.1.2");
}

TEST(CloudHypervisorConfigNetTest, KeepsAnAddressThatIsNotTheSourcesIdentity) {
  Json out = Rewritten(WithNet(R"([{"tap": "fe-tap-1", "ip": "192.168.249.1", "mask": "255.255.255.0"}])"));
  EXPECT_EQ(out["net"][0]["ip"], "192.168.249.1");
  EXPECT_EQ(out["net"][0]["tap"], "fe-tap-2");
}

TEST(CloudHypervisorConfigNetTest, MaskFollowsTheTargetPrefixLength) {
  for (auto [prefix, mask] : std::vector<std::pair<int, const char*>>{
           {0, "0.0.0.0"}, {8, "255.0.0.0"}, {20, "255.255.240.0"}, {24, "255.255.255.0"}, {32, "255.255.255.255"}}) {
    NetworkIdentity target = test::TargetIdentity();
    target.prefix_length = prefix;
    Json out = Rewritten(WithNet(R"([{"tap": "fe-tap-1", "mask": "255.255.255.0"}])"), target);
    EXPECT_EQ(out["net"][0]["mask"], mask) << prefix;
  }
}

TEST(CloudHypervisorConfigNetTest, TheOnlyNicGetsTheIdentityEvenWithoutATapName) {
  Json out = Rewritten(WithNet(R"([{"mac": "12:34:56:78:9a:bc", "num_queues": 2}])"));
  EXPECT_EQ(out["net"][0], Json::parse(R"({"mac": "02:fe:00:00:00:02", "num_queues": 2, "tap": "fe-tap-2"})"));
}

TEST(CloudHypervisorConfigNetTest, PicksTheIdentityNicByMacAmongSeveral) {
  Json out = Rewritten(WithNet(R"([
    {"vhost_user": true, "vhost_socket": "/run/ovs/vhu0", "mac": "02:aa:00:00:00:09"},
    {"mac": "02:FE:00:00:00:01", "id": "eth0"}
  ])"));
  EXPECT_EQ(out["net"][0], Json::parse(R"({"vhost_user": true, "vhost_socket": "/run/ovs/vhu0",
                                          "mac": "02:aa:00:00:00:09"})"));
  EXPECT_EQ(out["net"][1]["tap"], "fe-tap-2");
  EXPECT_EQ(out["net"][1]["mac"], "02:fe:00:00:00:02");
}

TEST(CloudHypervisorConfigNetTest, AVhostUserIdentityNicGetsTheMacButNoTap) {
  Json out = Rewritten(WithNet(R"([{"vhost_user": true, "vhost_socket": "/data/vm-1/net.sock",
                                    "mac": "02:fe:00:00:00:01"}])"));
  EXPECT_EQ(out["net"][0]["mac"], "02:fe:00:00:00:02");
  EXPECT_FALSE(out["net"][0].contains("tap"));
}

TEST(CloudHypervisorConfigNetTest, RefusesASecondNicOnAnotherTap) {
  Status status = RewriteError(WithNet(R"([{"tap": "fe-tap-1"}, {"tap": "storage-tap"}])"));
  EXPECT_EQ(status.code(), ErrorCode::kUnsupported);
  EXPECT_NE(status.message().find("config.json: net[1].tap: 'storage-tap'"), std::string::npos) << status.message();
}

TEST(CloudHypervisorConfigNetTest, RefusesANicOnInheritedFileDescriptors) {
  Status status = RewriteError(WithNet(R"([{"fds": [-1, -1], "mac": "02:fe:00:00:00:01"}])"));
  EXPECT_EQ(status.code(), ErrorCode::kUnsupported);
  EXPECT_NE(status.message().find("config.json: net[0].fds"), std::string::npos) << status.message();
}

TEST(CloudHypervisorConfigNetTest, RefusesTwoNicsCarryingTheSourcesIdentity) {
  Status status = RewriteError(WithNet(R"([{"tap": "fe-tap-1"}, {"mac": "02:fe:00:00:00:01"}])"));
  EXPECT_EQ(status.code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(status.message().find("net[0] and net[1]"), std::string::npos) << status.message();
}

TEST(CloudHypervisorConfigNetTest, WrongTypesAreNamedByTheirPath) {
  Status status = RewriteError(WithNet(R"([{"tap": "fe-tap-1", "ip": 167772161}])"));
  EXPECT_NE(status.message().find("config.json: net[0].ip: expected a string"), std::string::npos) << status.message();
  status = RewriteError(WithNet(R"({"tap": "fe-tap-1"})"));
  EXPECT_NE(status.message().find("config.json: net: expected an array"), std::string::npos) << status.message();
}

TEST(CloudHypervisorConfigNetTest, AConfigWithoutNetworkIsLeftAlone) {
  Json config = Json::parse(R"({"cpus": {"boot_vcpus": 1, "max_vcpus": 1}})");
  EXPECT_EQ(Rewritten(config), config);
  config["net"] = nullptr;
  EXPECT_EQ(Rewritten(config), config);
}

}  // namespace
}  // namespace fe::hypervisor::cloud_hypervisor
