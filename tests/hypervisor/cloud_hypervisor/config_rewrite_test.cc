#include "hypervisor/cloud_hypervisor/config_rewrite.h"

#include <map>
#include <set>

#include <gtest/gtest.h>

#include "tests/hypervisor/cloud_hypervisor/fixtures.h"
#include "tests/support/scratch.h"

namespace fe::hypervisor::cloud_hypervisor {
namespace {

using test::Fixture;
using test::FixtureText;

ConfigRewrite MakeRewrite(bool keep_vsock_cid) {
  return ConfigRewrite{snapshot::PathRewriter(test::kSourceDir, test::kTargetDir), test::SourceIdentity(),
                       test::TargetIdentity(), keep_vsock_cid};
}

Json Rewritten(Json config, bool keep_vsock_cid = true) {
  Status status = RewriteConfig(config, MakeRewrite(keep_vsock_cid), "config.json");
  EXPECT_TRUE(status.ok()) << status.ToString();
  return config;
}

Status RewriteError(Json config) { return RewriteConfig(config, MakeRewrite(true), "config.json"); }

// Every leaf of `json` by its JSON pointer.
void Flatten(const Json& json, const std::string& pointer, std::map<std::string, Json>& out) {
  if (json.is_object() && !json.empty()) {
    for (auto it = json.begin(); it != json.end(); ++it) Flatten(it.value(), pointer + "/" + it.key(), out);
  } else if (json.is_array() && !json.empty()) {
    for (size_t i = 0; i < json.size(); ++i) Flatten(json[i], pointer + "/" + std::to_string(i), out);
  } else {
    out[pointer] = json;
  }
}

TEST(CloudHypervisorConfigRewriteTest, RewritesEveryPathUnderTheSourceDirectory) {
  Json out = Rewritten(Fixture("snapshot_config.json"));
  EXPECT_EQ(out["payload"]["kernel"], "/data/vm-2/vmlinux");
  EXPECT_EQ(out["payload"]["initramfs"], "/data/vm-2/initramfs.cpio.gz");
  EXPECT_EQ(out["disks"][0]["path"], "/data/vm-2/rootfs.raw");
  EXPECT_EQ(out["disks"][2]["path"], "/data/vm-2/data.qcow2");
  EXPECT_EQ(out["memory"]["zones"][0]["file"], "/data/vm-2/memory/mem0");
  EXPECT_EQ(out["fs"][0]["socket"], "/data/vm-2/virtiofsd.sock");
  EXPECT_EQ(out["pmem"][0]["file"], "/data/vm-2/pmem.img");
  EXPECT_EQ(out["serial"]["file"], "/data/vm-2/logs/serial.log");
  EXPECT_EQ(out["console"]["socket"], "/data/vm-2/console.sock");
  EXPECT_EQ(out["vsock"]["socket"], "/data/vm-2/vsock.sock");
}

TEST(CloudHypervisorConfigRewriteTest, RewritesFirmwareAndOtherPathFields) {
  Json config = Json::parse(R"({
    "payload": {"firmware": "/data/vm-1/hypervisor-fw", "igvm": "/data/vm-1/guest.igvm"},
    "disks": [{"vhost_user": true, "vhost_socket": "/data/vm-1/vhost-blk.sock"}],
    "net": [{"vhost_user": true, "vhost_socket": "/data/vm-1/vhost-net.sock", "vhost_mode": "Server"}],
    "debug_console": {"mode": "File", "file": "/data/vm-1/debug.log"},
    "serial": {"mode": "Socket", "socket": "/data/vm-1/serial.sock"},
    "generic_vhost_user": [{"socket": "/data/vm-1/gpu.sock", "queue_sizes": [256], "device_type": 16}],
    "user_devices": [{"socket": "/data/vm-1/nvme.sock"}],
    "tpm": {"socket": "/data/vm-1/swtpm.sock"},
    "landlock_rules": [{"path": "/data/vm-1/shared", "access": "rw"}],
    "rng": {"src": "/data/vm-1/entropy"},
    "ivshmem": {"path": "/data/vm-1/ivshmem", "size": 134217728}
  })");
  Json out = Rewritten(config);
  EXPECT_EQ(out["payload"]["firmware"], "/data/vm-2/hypervisor-fw");
  EXPECT_EQ(out["payload"]["igvm"], "/data/vm-2/guest.igvm");
  EXPECT_EQ(out["disks"][0]["vhost_socket"], "/data/vm-2/vhost-blk.sock");
  EXPECT_EQ(out["net"][0]["vhost_socket"], "/data/vm-2/vhost-net.sock");
  EXPECT_EQ(out["debug_console"]["file"], "/data/vm-2/debug.log");
  EXPECT_EQ(out["serial"]["socket"], "/data/vm-2/serial.sock");
  EXPECT_EQ(out["generic_vhost_user"][0]["socket"], "/data/vm-2/gpu.sock");
  EXPECT_EQ(out["user_devices"][0]["socket"], "/data/vm-2/nvme.sock");
  EXPECT_EQ(out["tpm"]["socket"], "/data/vm-2/swtpm.sock");
  EXPECT_EQ(out["landlock_rules"][0]["path"], "/data/vm-2/shared");
  EXPECT_EQ(out["rng"]["src"], "/data/vm-2/entropy");
  EXPECT_EQ(out["ivshmem"]["path"], "/data/vm-2/ivshmem");
}

TEST(CloudHypervisorConfigRewriteTest, LeavesSiblingDirectoriesAndFreeTextAlone) {
  Json in = Fixture("snapshot_config.json");
  Json out = Rewritten(in);
  EXPECT_EQ(out["disks"][1]["path"], "/data/vm-10/disk");          // /data/vm-1 is only its prefix
  EXPECT_EQ(out["payload"]["cmdline"], in["payload"]["cmdline"]);  // a kernel command line is free text
  EXPECT_EQ(out["payload"]["cmdline"], "console=ttyS0 root=/dev/vda rw init=/data/vm-1/init.sh fe.dir=/data/vm-1");
  EXPECT_EQ(out["disks"][2]["serial"], "data-/data/vm-1");
  EXPECT_EQ(out["disks"][2]["x_vendor_cache"], "/data/vm-1/cache");  // unknown fields are never guessed at
  EXPECT_EQ(out["platform"]["oem_strings"][0], "fe.source=/data/vm-1");
  EXPECT_EQ(out["x_future_section"]["list"][3], "/data/vm-1");
}

TEST(CloudHypervisorConfigRewriteTest, KeepsTheVsockCidOfASnapshot) {
  Json out = Rewritten(Fixture("snapshot_config.json"), /*keep_vsock_cid=*/true);
  EXPECT_EQ(out["vsock"]["cid"], 3);
}

TEST(CloudHypervisorConfigRewriteTest, GivesABootConfigTheTargetVsockCid) {
  Json out = Rewritten(Fixture("boot_config.json"), /*keep_vsock_cid=*/false);
  EXPECT_EQ(out["vsock"]["cid"], 7);
  EXPECT_EQ(out["vsock"]["socket"], "/data/vm-2/vsock.sock");
}

TEST(CloudHypervisorConfigRewriteTest, BootConfigWithoutATargetCidIsRefused) {
  ConfigRewrite rewrite = MakeRewrite(false);
  rewrite.target_identity.vsock_cid = 0;
  Json config = Fixture("boot_config.json");
  Status status = RewriteConfig(config, rewrite, "config.json");
  EXPECT_EQ(status.code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(status.message().find("config.json: vsock.cid"), std::string::npos) << status.message();
}

TEST(CloudHypervisorConfigRewriteTest, PreservesEveryFieldItDoesNotRewrite) {
  Json in = Fixture("snapshot_config.json");
  Result<std::string> text = RewriteConfigText(FixtureText("snapshot_config.json"), MakeRewrite(true), "config.json");
  FE_ASSERT_OK(text);
  Json out = Json::parse(*text);
  const std::set<std::string> rewritten = {
      "/payload/kernel", "/payload/initramfs", "/disks/0/path", "/disks/2/path",   "/memory/zones/0/file",
      "/fs/0/socket",    "/pmem/0/file",       "/serial/file",  "/console/socket", "/vsock/socket",
      "/net/0/tap",      "/net/0/mac",         "/net/0/ip",     "/net/0/mask",     "/net/0/host_mac"};
  std::map<std::string, Json> before, after;
  Flatten(in, "", before);
  Flatten(out, "", after);
  for (const auto& [pointer, value] : before) {
    if (rewritten.count(pointer)) continue;
    ASSERT_TRUE(after.count(pointer)) << pointer << " was dropped";
    EXPECT_EQ(after[pointer].dump(), value.dump()) << pointer;
  }
  for (const auto& [pointer, value] : after) EXPECT_TRUE(before.count(pointer)) << pointer << " was added";
  EXPECT_EQ(after.count("/net/0/host_mac"), 0u);
  // Exact values a round trip through a double or a sorted map would change.
  EXPECT_NE(text->find("\"huge\": 18446744073709551615"), std::string::npos);
  EXPECT_NE(text->find("\"ratio\": 0.1,"), std::string::npos);
  EXPECT_NE(text->find("\"exponent\": 1.5e-300"), std::string::npos);
  EXPECT_NE(text->find("\"text\": \"café ☕ /data/vm-1/x\""), std::string::npos);
  std::vector<std::string> keys_in, keys_out;
  for (auto it = in.begin(); it != in.end(); ++it) keys_in.push_back(it.key());
  for (auto it = out.begin(); it != out.end(); ++it) keys_out.push_back(it.key());
  EXPECT_EQ(keys_out, keys_in);  // the file's order is kept
}

TEST(CloudHypervisorConfigRewriteTest, MalformedJsonNamesTheFile) {
  Result<std::string> text =
      RewriteConfigText(FixtureText("malformed_config.json"), MakeRewrite(true), "snapshot/config.json");
  ASSERT_FALSE(text.ok());
  EXPECT_EQ(text.status().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(text.status().message().rfind("snapshot/config.json: not valid JSON: ", 0), 0u) << text.status().message();
  EXPECT_NE(text.status().message().find("line 6"), std::string::npos) << text.status().message();

  Result<std::string> array = RewriteConfigText("[1, 2]", MakeRewrite(true), "config.json");
  EXPECT_NE(array.status().message().find("config.json: (root): expected an object"), std::string::npos)
      << array.status().message();
}

TEST(CloudHypervisorConfigRewriteTest, AFieldOfTheWrongTypeIsNamedByItsPath) {
  Json config = Fixture("snapshot_config.json");
  config["disks"][1]["path"] = 42;
  Status status = RewriteError(config);
  EXPECT_EQ(status.code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(status.message().find("config.json: disks[1].path: expected a string, found 42"), std::string::npos)
      << status.message();

  config = Fixture("snapshot_config.json");
  config["payload"] = "vmlinux";
  status = RewriteError(config);
  EXPECT_NE(status.message().find("config.json: payload: expected an object"), std::string::npos) << status.message();

  config = Fixture("snapshot_config.json");
  config["fs"] = Json::object();
  status = RewriteError(config);
  EXPECT_NE(status.message().find("config.json: fs: expected an array"), std::string::npos) << status.message();
}

TEST(CloudHypervisorConfigRewriteTest, RefusesAWritableDiskOutsideTheSourceDirectory) {
  Json config = Fixture("snapshot_config.json");
  config["disks"][1]["readonly"] = false;
  Status status = RewriteError(config);
  EXPECT_EQ(status.code(), ErrorCode::kUnsupported);
  EXPECT_NE(status.message().find("config.json: disks[1].path: '/data/vm-10/disk' is a writable disk"),
            std::string::npos)
      << status.message();
}

TEST(CloudHypervisorConfigRewriteTest, KeepsSharedThingsOutsideTheSourceDirectory) {
  Json config = Json::parse(R"({
    "payload": {"kernel": "/var/lib/images/vmlinux", "initramfs": "/data/vm-1-initramfs"},
    "disks": [{"path": "/var/lib/images/base.raw", "readonly": true},
              {"vhost_user": true, "vhost_socket": "/run/spdk/vhost.0"}],
    "pmem": [{"file": "/var/lib/images/ro.pmem", "discard_writes": true}],
    "fs": [{"tag": "home", "socket": "/run/virtiofsd/home.sock"}],
    "net": [{"tap": "fe-tap-1"}, {"vhost_user": true, "vhost_socket": "/run/ovs/vhu0", "vhost_mode": "Client"}]
  })");
  Json out = Rewritten(config);
  EXPECT_EQ(out["payload"], config["payload"]);
  EXPECT_EQ(out["disks"], config["disks"]);
  EXPECT_EQ(out["pmem"], config["pmem"]);
  EXPECT_EQ(out["fs"], config["fs"]);
  EXPECT_EQ(out["net"][1], config["net"][1]);
}

TEST(CloudHypervisorConfigRewriteTest, RefusesWhatTheForkWouldTakeFromTheSource) {
  struct Case {
    const char* config;
    const char* field;
  };
  for (const Case& c : std::vector<Case>{
           {R"({"vsock": {"cid": 3, "socket": "/run/vm-1/vsock.sock"}})", "vsock.socket"},
           {R"({"console": {"mode": "Socket", "socket": "/run/vm-1/console.sock"}})", "console.socket"},
           {R"({"serial": {"mode": "File", "file": "/var/log/vm-1/serial.log"}})", "serial.file"},
           {R"({"pmem": [{"file": "/var/lib/vm-1.pmem"}]})", "pmem[0].file"},
           {R"({"disks": [{"path": "/data/vm-1/a.raw"}, {"path": "/var/lib/shared.raw"}]})", "disks[1].path"},
           {R"({"net": [{"tap": "fe-tap-1"}, {"vhost_user": true, "vhost_socket": "/run/vhu1",
                         "vhost_mode": "Server"}]})",
            "net[1].vhost_socket"},
       }) {
    Status status = RewriteError(Json::parse(c.config));
    EXPECT_EQ(status.code(), ErrorCode::kUnsupported) << c.config;
    EXPECT_NE(status.message().find(std::string("config.json: ") + c.field + ": "), std::string::npos)
        << status.message();
  }
}

}  // namespace
}  // namespace fe::hypervisor::cloud_hypervisor
