#include "hypervisor/qemu/qemu_config.h"

#include <filesystem>

#include <gtest/gtest.h>

#include "tests/hypervisor/qemu/fixtures.h"
#include "tests/support/file_util.h"
#include "tests/support/temp_dir.h"

namespace fe::hypervisor::qemu {
namespace {

using test::FixtureText;
using test::SourceConfig;

// Replaces one member of the fixture and parses the result.
Result<Config> ParseWith(const std::string& pointer, const Json& value) {
  Json root = Json::parse(FixtureText("source_config.json"));
  root[Json::json_pointer(pointer)] = value;
  return ParseConfig(root.dump(), "/data/vm-1/qemu-config.json");
}

TEST(QemuConfigTest, ParsesTypedFieldsOfStoredConfig) {
  Config config = SourceConfig();
  EXPECT_EQ(config.machine, "q35");
  EXPECT_EQ(config.cpus, 2);
  EXPECT_EQ(config.memory_mib, 512u);
  EXPECT_EQ(config.memory_file, "/data/vm-1/mem.bin");
  EXPECT_EQ(config.kernel, "/data/vm-1/boot/vmlinuz");
  ASSERT_EQ(config.drives.size(), 4u);
  EXPECT_EQ(config.drives[0].format, "qcow2");
  EXPECT_EQ(config.drives[1].format, "raw");
  EXPECT_EQ(config.drives[1].device, "virtio-blk-pci");  // the default
  EXPECT_FALSE(config.drives[1].read_only);
  EXPECT_TRUE(config.drives[2].read_only);
  ASSERT_EQ(config.nics.size(), 1u);
  EXPECT_EQ(config.nics[0].ifname, "fe-tap-1");
  EXPECT_EQ(config.nics[0].mac, "02:fe:00:00:00:01");
  ASSERT_EQ(config.chardevs.size(), 3u);
  EXPECT_EQ(config.chardevs[2].virtio_port, "org.forkengine.identity.0");
  EXPECT_EQ(config.serial, "seriallog");
  EXPECT_EQ(config.qmp_socket, "/data/vm-1/run/qmp.sock");
  ASSERT_TRUE(config.vsock.has_value());
  EXPECT_EQ(config.vsock->guest_cid, 3u);
}

TEST(QemuConfigTest, RoundTripKeepsUnknownFieldsAtEveryLevel) {
  Config config = SourceConfig();
  Json written = Json::parse(SerializeConfig(config));
  EXPECT_EQ(written["labels"], Json::parse(R"({"team": "a", "tier": "pool"})"));
  EXPECT_EQ(written["created_at"], "2026-01-05T10:00:00Z");
  EXPECT_EQ(written["drives"][0]["cache"], "none");
  EXPECT_EQ(written["nics"][0]["queues"], 1);
  EXPECT_EQ(written["chardevs"][2]["note"], "guest agent");
  EXPECT_EQ(written["vsock"]["owner"], "engine");

  Result<Config> again = ParseConfig(written.dump(), "again");
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ(SerializeConfig(*again), SerializeConfig(config));
}

TEST(QemuConfigTest, ErrorsNameFileAndField) {
  struct Case {
    std::string pointer;
    Json value;
    std::string field;
  };
  const std::vector<Case> cases = {
      {"/drives/1/file", 7, "drives[1].file"},
      {"/drives/1/file", "disks/data.raw", "drives[1].file"},
      {"/drives/0/format", "vmdk", "drives[0].format"},
      {"/drives/2/read_only", "yes", "drives[2].read_only"},
      {"/nics/0/mac", "02:FE:00:00:00:01", "nics[0].mac"},
      {"/nics/0/ifname", "a-very-long-tap-name", "nics[0].ifname"},
      {"/chardevs/1/backend", "pty", "chardevs[1].backend"},
      {"/chardevs/0/id", "0bad", "chardevs[0].id"},
      {"/vsock/guest_cid", 2, "vsock.guest_cid"},
      {"/cpus", 0, "cpus"},
      {"/memory_mib", "512", "memory_mib"},
      {"/kernel", "vmlinuz", "kernel"},
      {"/vmgenid", "not-a-guid", "vmgenid"},
      {"/serial", "nowhere", "serial"},
      {"/drives/1/id", "root", "drives[1].id"},
      {"/vsock/id", "root-dev", "vsock.id"},
      {"/chardevs/0/virtio_port", "org.forkengine.identity.0", "chardevs[2].virtio_port"},
      {"/chardevs/1/virtio_port", "seriallog-is-the-serial-port", "chardevs[1].virtio_port"},
  };
  for (const Case& c : cases) {
    Result<Config> config = ParseWith(c.pointer, c.value);
    ASSERT_FALSE(config.ok()) << c.pointer;
    EXPECT_EQ(config.status().code(), ErrorCode::kInvalidArgument) << c.pointer;
    EXPECT_NE(config.status().message().find("/data/vm-1/qemu-config.json: field '" + c.field + "'"), std::string::npos)
        << config.status().message();
  }
}

TEST(QemuConfigTest, QmpSocketIsRequired) {
  Json root = Json::parse(FixtureText("source_config.json"));
  root.erase("qmp_socket");
  Result<Config> config = ParseConfig(root.dump(), "c.json");
  ASSERT_FALSE(config.ok());
  EXPECT_NE(config.status().message().find("c.json: field 'qmp_socket': is required"), std::string::npos)
      << config.status().message();
}

TEST(QemuConfigTest, SocketPathLongerThanSockaddrIsRefused) {
  Result<Config> config = ParseWith("/qmp_socket", "/" + std::string(120, 'q') + "/qmp.sock");
  ASSERT_FALSE(config.ok());
  EXPECT_NE(config.status().message().find("field 'qmp_socket'"), std::string::npos) << config.status().message();
}

TEST(QemuConfigTest, MalformedJsonNamesFile) {
  Result<Config> config = ParseConfig("{\"machine\": ", "/data/vm-1/qemu-config.json");
  ASSERT_FALSE(config.ok());
  EXPECT_EQ(config.status().message(), "/data/vm-1/qemu-config.json: not valid JSON");
}

TEST(QemuConfigTest, WriteConfigReplacesFileWithoutLeavingTemporaries) {
  Result<fe::test::TempDir> dir = fe::test::TempDir::Create();
  ASSERT_TRUE(dir.ok()) << dir.status().ToString();
  ASSERT_TRUE(fe::test::WriteFile(dir->Sub(kConfigFile), "old").ok());
  Config config = SourceConfig();
  ASSERT_TRUE(WriteConfig(dir->path(), config).ok());

  Result<Config> read = ReadConfig(dir->path());
  ASSERT_TRUE(read.ok()) << read.status().ToString();
  EXPECT_EQ(SerializeConfig(*read), SerializeConfig(config));
  std::vector<std::string> names;
  for (const auto& entry : std::filesystem::directory_iterator(dir->path())) names.push_back(entry.path().filename());
  EXPECT_EQ(names, std::vector<std::string>{kConfigFile});
}

TEST(QemuConfigTest, ReadConfigOfMissingFileIsNotFound) {
  Result<fe::test::TempDir> dir = fe::test::TempDir::Create();
  ASSERT_TRUE(dir.ok());
  Result<Config> config = ReadConfig(dir->path());
  ASSERT_FALSE(config.ok());
  EXPECT_EQ(config.status().code(), ErrorCode::kNotFound);
  EXPECT_NE(config.status().message().find(dir->Sub(kConfigFile)), std::string::npos) << config.status().message();
}

}  // namespace
}  // namespace fe::hypervisor::qemu
