// The config rewrite on a real-format Firecracker config: paths only at a component boundary, free
// text untouched, the fork's identity, unknown fields kept, and refusals that name file and field.
#include "hypervisor/firecracker/config_rewrite.h"

#include <gtest/gtest.h>

#include "tests/hypervisor/firecracker/fixtures.h"

namespace fe::hypervisor::firecracker {
namespace {

using test::Fixture;
using test::kSourceDir;
using test::kTargetDir;
using test::TargetIdentity;

ConfigRewrite ForkRewrite() { return ConfigRewrite{snapshot::PathRewriter(kSourceDir, kTargetDir), TargetIdentity()}; }

Status Rewrite(Json& config) { return RewriteConfig(config, ForkRewrite(), "config.json"); }

void ExpectRefused(Json config, ErrorCode code, std::string_view field) {
  Status status = Rewrite(config);
  ASSERT_FALSE(status.ok()) << "expected a refusal naming " << field;
  EXPECT_EQ(status.code(), code) << status.ToString();
  EXPECT_NE(status.message().find("config.json: " + std::string(field)), std::string::npos) << status.ToString();
}

TEST(FirecrackerConfigRewriteTest, RewritesPathsBeneathSourceOnly) {
  Json config = Fixture("config.json");
  ASSERT_TRUE(Rewrite(config).ok());
  EXPECT_EQ(config["drives"][0]["path_on_host"], "/data/vm-2/rootfs.ext4");
  EXPECT_EQ(config["drives"][1]["path_on_host"], "/data/vm-2/disks/scratch.img");
  EXPECT_EQ(config["drives"][2]["path_on_host"], "/data/vm-10/tools.img") << "a sibling, not beneath the source";
  EXPECT_EQ(config["vsock"]["uds_path"], "/data/vm-2/vsock.sock");
  EXPECT_EQ(config["logger"]["log_path"], "/data/vm-2/logs/firecracker.log");
  EXPECT_EQ(config["metrics"]["metrics_path"], "/data/vm-2/logs/metrics.fifo");
  EXPECT_EQ(config["boot-source"]["kernel_image_path"], "/var/lib/forkengine/images/vmlinux-6.1")
      << "a shared kernel outside the source stays";
}

TEST(FirecrackerConfigRewriteTest, LeavesFreeTextAndUnknownFieldsAlone) {
  Json original = Fixture("config.json");
  Json config = original;
  ASSERT_TRUE(Rewrite(config).ok());
  EXPECT_EQ(config["boot-source"]["boot_args"], original["boot-source"]["boot_args"])
      << "the kernel command line mentions /data/vm-1 but is free text";
  EXPECT_EQ(config["x-forkengine-note"], "unknown fields survive");
  EXPECT_EQ(config["mmds-config"], original["mmds-config"]);
  EXPECT_EQ(config["machine-config"], original["machine-config"]);
  EXPECT_TRUE(config["boot-source"]["initrd_path"].is_null());
  EXPECT_EQ(config["drives"][0]["cache_type"], "Unsafe");
  // Key order survives, so a diff of the file shows only what changed.
  std::vector<std::string> keys, original_keys;
  for (auto& [key, value] : config.items()) keys.push_back(key);
  for (auto& [key, value] : original.items()) original_keys.push_back(key);
  EXPECT_EQ(keys, original_keys);
}

TEST(FirecrackerConfigRewriteTest, GivesTheForkItsIdentity) {
  Json config = Fixture("config.json");
  ASSERT_TRUE(Rewrite(config).ok());
  EXPECT_EQ(config["network-interfaces"][0]["host_dev_name"], "fe-tap-2");
  EXPECT_EQ(config["network-interfaces"][0]["guest_mac"], "02:fe:00:00:00:02");
  EXPECT_EQ(config["network-interfaces"][0]["iface_id"], "eth0");
  EXPECT_EQ(config["vsock"]["guest_cid"], 7);
}

TEST(FirecrackerConfigRewriteTest, DropsGuestMacWhenTheForkHasNone) {
  Json config = Fixture("config.json");
  ConfigRewrite rewrite = ForkRewrite();
  rewrite.target_identity.mac.clear();
  ASSERT_TRUE(RewriteConfig(config, rewrite, "config.json").ok());
  EXPECT_FALSE(config["network-interfaces"][0].contains("guest_mac")) << "never keep the source's MAC";
}

TEST(FirecrackerConfigRewriteTest, RefusesWhatTheForkWouldShareWithTheSource) {
  Json writable_outside = Fixture("config.json");
  writable_outside["drives"][2]["is_read_only"] = false;
  ExpectRefused(writable_outside, ErrorCode::kUnsupported, "drives[2].path_on_host");

  Json vhost_user = Fixture("config.json");
  vhost_user["drives"][1] = {{"drive_id", "vu"}, {"socket", "/run/vhost-user-blk.sock"}, {"is_root_device", false}};
  ExpectRefused(vhost_user, ErrorCode::kUnsupported, "drives[1].socket");

  Json shared_vsock = Fixture("config.json");
  shared_vsock["vsock"]["uds_path"] = "/run/vm-1.vsock";
  ExpectRefused(shared_vsock, ErrorCode::kUnsupported, "vsock.uds_path");

  Json shared_log = Fixture("config.json");
  shared_log["logger"]["log_path"] = "/var/log/firecracker.log";
  ExpectRefused(shared_log, ErrorCode::kUnsupported, "logger.log_path");

  Json second_nic = Fixture("config.json");
  second_nic["network-interfaces"].push_back({{"iface_id", "eth1"}, {"host_dev_name", "fe-tap-9"}});
  ExpectRefused(second_nic, ErrorCode::kUnsupported, "network-interfaces[1]");

  Json writable_pmem = Fixture("config.json");
  writable_pmem["pmem"] = Json::array({{{"id", "p0"}, {"path_on_host", "/images/p.img"}, {"read_only", false}}});
  ExpectRefused(writable_pmem, ErrorCode::kUnsupported, "pmem[0].path_on_host");
}

TEST(FirecrackerConfigRewriteTest, RefusesRelativePaths) {
  Json config = Fixture("config.json");
  config["drives"][0]["path_on_host"] = "rootfs.ext4";
  ExpectRefused(config, ErrorCode::kInvalidArgument, "drives[0].path_on_host");
  Json kernel = Fixture("config.json");
  kernel["boot-source"]["kernel_image_path"] = "vmlinux.bin";
  ExpectRefused(kernel, ErrorCode::kInvalidArgument, "boot-source.kernel_image_path");
}

TEST(FirecrackerConfigRewriteTest, RefusesWrongTypesNamingTheField) {
  Json drives = Fixture("config.json");
  drives["drives"] = "rootfs";
  ExpectRefused(drives, ErrorCode::kInvalidArgument, "drives");
  Json path = Fixture("config.json");
  path["drives"][1]["path_on_host"] = 42;
  ExpectRefused(path, ErrorCode::kInvalidArgument, "drives[1].path_on_host");
  Json tap = Fixture("config.json");
  tap["network-interfaces"][0].erase("host_dev_name");
  ExpectRefused(tap, ErrorCode::kInvalidArgument, "network-interfaces[0].host_dev_name");
}

TEST(FirecrackerConfigRewriteTest, NeedsTheForksTapAndCid) {
  Json config = Fixture("config.json");
  ConfigRewrite no_tap = ForkRewrite();
  no_tap.target_identity.tap_device.clear();
  Status status = RewriteConfig(config, no_tap, "config.json");
  EXPECT_EQ(status.code(), ErrorCode::kInvalidArgument) << status.ToString();
  ConfigRewrite no_cid = ForkRewrite();
  no_cid.target_identity.vsock_cid = 0;
  config = Fixture("config.json");
  status = RewriteConfig(config, no_cid, "config.json");
  EXPECT_NE(status.message().find("vsock.guest_cid"), std::string::npos) << status.ToString();
}

TEST(FirecrackerConfigRewriteTest, MinimalConfigWithoutOptionalDevices) {
  Json config = Json::parse(R"({"boot-source": {"kernel_image_path": "/data/vm-1/vmlinux"},
                                "drives": [], "machine-config": {"vcpu_count": 1, "mem_size_mib": 128}})");
  ASSERT_TRUE(Rewrite(config).ok());
  EXPECT_EQ(config["boot-source"]["kernel_image_path"], "/data/vm-2/vmlinux");
  EXPECT_FALSE(config.contains("network-interfaces"));
}

TEST(FirecrackerConfigRewriteTest, TextRewriteReportsParseErrorsWithTheFile) {
  Result<std::string> text = RewriteConfigText("{not json", ForkRewrite(), "/x/config.json");
  ASSERT_FALSE(text.ok());
  EXPECT_NE(text.status().message().find("/x/config.json"), std::string::npos);
}

}  // namespace
}  // namespace fe::hypervisor::firecracker
