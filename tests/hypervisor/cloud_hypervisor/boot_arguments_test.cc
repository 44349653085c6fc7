#include "hypervisor/cloud_hypervisor/boot_arguments.h"

#include <algorithm>

#include <gtest/gtest.h>

#include "tests/hypervisor/cloud_hypervisor/fixtures.h"
#include "tests/support/scratch.h"

namespace fe::hypervisor::cloud_hypervisor {
namespace {

using test::Fixture;
using Args = std::vector<std::string>;

Args Arguments(const Json& config) {
  Result<Args> args = BootArguments(config, "config.json");
  EXPECT_TRUE(args.ok()) << args.status().ToString();
  return args.ok() ? *args : Args{};
}

// The values following `flag` up to the next option.
Args ValuesOf(const Args& args, const std::string& flag) {
  auto it = std::find(args.begin(), args.end(), flag);
  Args values;
  if (it == args.end()) return values;
  for (++it; it != args.end() && it->rfind("--", 0) != 0; ++it) values.push_back(*it);
  return values;
}

TEST(CloudHypervisorBootArgumentsTest, BuildsTheCommandLineOfABootConfig) {
  EXPECT_EQ(Arguments(Fixture("boot_config.json")),
            (Args{"--cpus",
                  "boot=2,max=4",
                  "--memory",
                  "size=1073741824,shared=on",
                  "--kernel",
                  "/data/vm-1/vmlinux",
                  "--initramfs",
                  "/data/vm-1/initramfs.cpio.gz",
                  "--cmdline",
                  "console=ttyS0 root=/dev/vda rw fe.dir=/data/vm-1",
                  "--disk",
                  "path=/data/vm-1/rootfs.raw",
                  "path=/data/vm-10/disk,readonly=on,id=base",
                  "--net",
                  "tap=fe-tap-1,ip=10.20.0.1,mask=255.255.255.0,mac=02:fe:00:00:00:01,num_queues=2",
                  "--rng",
                  "src=/dev/urandom",
                  "--serial",
                  "file=/data/vm-1/logs/serial.log",
                  "--console",
                  "off",
                  "--vsock",
                  "cid=3,socket=/data/vm-1/vsock.sock",
                  "--watchdog"}));
}

TEST(CloudHypervisorBootArgumentsTest, CarriesTheCommonFieldsOfASerializedConfig) {
  Json config = Fixture("snapshot_config.json");
  config["memory"].erase("zones");
  config["memory"]["size"] = 1073741824;
  Args args = Arguments(config);
  EXPECT_EQ(ValuesOf(args, "--cpus"), Args{"boot=2,max=2,kvm_hyperv=off,max_phys_bits=46"});
  EXPECT_EQ(ValuesOf(args, "--memory"), Args{"size=1073741824,mergeable=off,shared=on,hugepages=off,prefault=off"});
  EXPECT_EQ(ValuesOf(args, "--disk")[2],
            "path=/data/vm-1/data.qcow2,readonly=off,direct=on,num_queues=2,queue_size=256,vhost_user=off,"
            "id=_disk2,serial=data-/data/vm-1,pci_segment=0");
  EXPECT_EQ(ValuesOf(args, "--net"),
            Args{"tap=fe-tap-1,ip=10.20.0.1,mask=255.255.255.0,mac=02:fe:00:00:00:01,host_mac=02:fe:ff:00:00:01,"
                 "mtu=1500,num_queues=2,queue_size=256,vhost_user=off,vhost_mode=client,id=_net3,pci_segment=0"});
  EXPECT_EQ(ValuesOf(args, "--fs"), Args{"tag=shared,socket=/data/vm-1/virtiofsd.sock,num_queues=1,queue_size=1024,"
                                         "id=_fs4,pci_segment=0"});
  EXPECT_EQ(ValuesOf(args, "--pmem"),
            Args{"file=/data/vm-1/pmem.img,size=134217728,discard_writes=off,id=_pmem5,pci_segment=0"});
  EXPECT_EQ(ValuesOf(args, "--console"), Args{"socket=/data/vm-1/console.sock"});
  EXPECT_EQ(ValuesOf(args, "--vsock"), Args{"cid=3,socket=/data/vm-1/vsock.sock,id=_vsock6,pci_segment=0"});
  EXPECT_EQ(std::count(args.begin(), args.end(), "--watchdog"), 0);
}

TEST(CloudHypervisorBootArgumentsTest, TheKernelCommandLineIsOneArgumentAsItIs) {
  Json config = Json::parse(R"({"payload": {"kernel": "/k", "cmdline": "console=ttyS0,115200 x=\"a b\" [y]"}})");
  EXPECT_EQ(Arguments(config), (Args{"--kernel", "/k", "--cmdline", "console=ttyS0,115200 x=\"a b\" [y]"}));
}

TEST(CloudHypervisorBootArgumentsTest, ConsoleModes) {
  for (auto [mode, spec] : std::vector<std::pair<const char*, const char*>>{
           {"Off", "off"}, {"Null", "null"}, {"Pty", "pty"}, {"Tty", "tty"}}) {
    Json config = Json::object();
    config["serial"] = Json{{"mode", mode}};
    EXPECT_EQ(Arguments(config), (Args{"--serial", spec}));
  }
  Json config = Json::parse(R"({"serial": {"mode": "Socket", "socket": "/vm/serial.sock"}})");
  EXPECT_EQ(Arguments(config), (Args{"--serial", "socket=/vm/serial.sock"}));

  Result<Args> missing = BootArguments(Json::parse(R"({"serial": {"mode": "File"}})"), "config.json");
  EXPECT_NE(missing.status().message().find("config.json: serial.file: missing"), std::string::npos)
      << missing.status().message();
  Result<Args> unknown = BootArguments(Json::parse(R"({"console": {"mode": "Telnet"}})"), "config.json");
  EXPECT_NE(unknown.status().message().find("config.json: console.mode: unknown console mode"), std::string::npos)
      << unknown.status().message();
}

TEST(CloudHypervisorBootArgumentsTest, RefusesSectionsItCannotCarry) {
  Json config = Fixture("boot_config.json");
  config["devices"] = Json::parse(R"([{"path": "/sys/bus/pci/devices/0000:01:00.0/"}])");
  Result<Args> args = BootArguments(config, "config.json");
  EXPECT_EQ(args.status().code(), ErrorCode::kUnsupported);
  EXPECT_NE(args.status().message().find("config.json: devices: "), std::string::npos) << args.status().message();

  args = BootArguments(Fixture("snapshot_config.json"), "config.json");
  EXPECT_EQ(args.status().code(), ErrorCode::kUnsupported);
  EXPECT_NE(args.status().message().find("config.json: memory.zones: "), std::string::npos) << args.status().message();

  config = Fixture("boot_config.json");
  config["devices"] = Json::array();  // empty sections are nothing to carry
  EXPECT_TRUE(BootArguments(config, "config.json").ok());
}

TEST(CloudHypervisorBootArgumentsTest, RefusesValuesTheOptionSyntaxWouldSplit) {
  Json config = Fixture("boot_config.json");
  config["disks"][1]["path"] = "/data/images/a,b.raw";
  Result<Args> args = BootArguments(config, "config.json");
  EXPECT_EQ(args.status().code(), ErrorCode::kUnsupported);
  EXPECT_NE(args.status().message().find("config.json: disks[1].path: '/data/images/a,b.raw'"), std::string::npos)
      << args.status().message();
}

TEST(CloudHypervisorBootArgumentsTest, WrongTypesAreNamedByTheirPath) {
  Json config = Fixture("boot_config.json");
  config["net"][0]["mac"] = Json::array();
  Result<Args> args = BootArguments(config, "config.json");
  EXPECT_EQ(args.status().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(args.status().message().find("config.json: net[0].mac: expected a string"), std::string::npos)
      << args.status().message();
}

}  // namespace
}  // namespace fe::hypervisor::cloud_hypervisor
