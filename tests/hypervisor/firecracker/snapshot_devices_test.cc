// devices.json: read from Firecracker's config and GET /vm/config shapes, round trip, unknown fields.
#include "hypervisor/firecracker/snapshot_devices.h"

#include <gtest/gtest.h>

#include "tests/hypervisor/firecracker/fixtures.h"

namespace fe::hypervisor::firecracker {
namespace {

TEST(FirecrackerSnapshotDevicesTest, ReadsTheDevicesOfAConfig) {
  Result<SnapshotDevices> devices = ParseSnapshotDevices(test::Fixture("config.json"), "config.json");
  ASSERT_TRUE(devices.ok()) << devices.status().ToString();
  ASSERT_EQ(devices->drives.size(), 3u);
  EXPECT_EQ(devices->drives[0].drive_id, "rootfs");
  EXPECT_EQ(devices->drives[0].path_on_host, "/data/vm-1/rootfs.ext4");
  EXPECT_FALSE(devices->drives[0].read_only);
  EXPECT_TRUE(devices->drives[2].read_only);
  ASSERT_EQ(devices->network_interfaces.size(), 1u);
  EXPECT_EQ(devices->network_interfaces[0].iface_id, "eth0");
  EXPECT_EQ(devices->network_interfaces[0].host_dev_name, "fe-tap-1");
  ASSERT_TRUE(devices->vsock.has_value());
  EXPECT_EQ(devices->vsock->uds_path, "/data/vm-1/vsock.sock");
  EXPECT_EQ(devices->vsock->guest_cid, 3u);
  EXPECT_FALSE(devices->source_alias.has_value());
}

TEST(FirecrackerSnapshotDevicesTest, RoundTripKeepsUnknownFields) {
  SnapshotDevices devices;
  devices.drives.push_back({"rootfs", "/data/vm-1/rootfs.ext4", "", false});
  devices.network_interfaces.push_back({"eth0", "fe-tap-1", "02:fe:00:00:00:01"});
  devices.vsock = VsockDevice{"/data/vm-1/vsock.sock", 3};
  devices.source_alias = PathAlias{"/data/vm-1", "/data/vm-2"};
  std::string text = EncodeSnapshotDevices(devices, Json{{"taken_by", "forkengine 0.1"}});
  Json document = Json::parse(text);
  EXPECT_EQ(document["taken_by"], "forkengine 0.1");
  EXPECT_EQ(document["version"], 1);
  Result<SnapshotDevices> parsed = ParseSnapshotDevices(document, "devices.json");
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  EXPECT_EQ(parsed->drives[0].path_on_host, "/data/vm-1/rootfs.ext4");
  EXPECT_EQ(parsed->network_interfaces[0].guest_mac, "02:fe:00:00:00:01");
  EXPECT_EQ(parsed->vsock->guest_cid, 3u);
  ASSERT_TRUE(parsed->source_alias.has_value());
  EXPECT_EQ(parsed->source_alias->from, "/data/vm-1");
  EXPECT_EQ(parsed->source_alias->to, "/data/vm-2");

  devices.source_alias.reset();
  EXPECT_FALSE(Json::parse(EncodeSnapshotDevices(devices, document)).contains("source_alias"));
}

TEST(FirecrackerSnapshotDevicesTest, ErrorsNameFileAndField) {
  struct Case {
    const char* json;
    const char* field;
  };
  const Case cases[] = {
      {R"({"version": 2})", "version"},
      {R"({"drives": [{"path_on_host": "/a"}]})", "drives[0].drive_id"},
      {R"({"drives": [{"drive_id": "a", "is_read_only": "no"}]})", "drives[0].is_read_only"},
      {R"({"network-interfaces": {"iface_id": "eth0"}})", "network-interfaces"},
      {R"({"vsock": {"uds_path": "/a/v.sock", "guest_cid": -1}})", "vsock.guest_cid"},
      {R"({"source_alias": {"from": "relative", "to": "/b"}})", "source_alias"},
  };
  for (const Case& c : cases) {
    Result<SnapshotDevices> devices = ParseSnapshotDevices(Json::parse(c.json), "/s/devices.json");
    ASSERT_FALSE(devices.ok()) << c.json;
    EXPECT_NE(devices.status().message().find("/s/devices.json: " + std::string(c.field)), std::string::npos)
        << devices.status().ToString();
  }
}

}  // namespace
}  // namespace fe::hypervisor::firecracker
