#include "hypervisor/qemu/qemu_argv.h"

#include <algorithm>

#include <gtest/gtest.h>

#include "tests/hypervisor/qemu/fixtures.h"

namespace fe::hypervisor::qemu {
namespace {

using test::SourceConfig;
using Argv = std::vector<std::string>;

// The value following the first `flag` whose value satisfies `matches`, or "".
std::vector<std::string> ValuesOf(const Argv& argv, const std::string& flag) {
  std::vector<std::string> values;
  for (size_t i = 0; i + 1 < argv.size(); ++i) {
    if (argv[i] == flag) values.push_back(argv[i + 1]);
  }
  return values;
}

TEST(QemuArgvTest, ASharedMemoryRestoreMapsTheTemplatesFilePrivately) {
  const Argv argv = BuildArgv(SourceConfig(), Incoming{Incoming::Kind::kDefer, ""}, "/data/vm-0/mem.bin");
  EXPECT_EQ(ValuesOf(argv, "-object"),
            Argv{"memory-backend-file,id=fe-ram,size=512M,mem-path=/data/vm-0/mem.bin,share=off"});
  EXPECT_EQ(ValuesOf(argv, "-machine"), Argv{"q35,memory-backend=fe-ram"});
}

TEST(QemuArgvTest, BootArgvDescribesTheWholeMachine) {
  const Argv argv = BuildArgv(SourceConfig());
  EXPECT_EQ(argv[0], "qemu-system-x86_64");
  EXPECT_EQ(ValuesOf(argv, "-machine"), Argv{"q35,memory-backend=fe-ram"});
  EXPECT_EQ(ValuesOf(argv, "-accel"), Argv{"tcg"});
  EXPECT_EQ(ValuesOf(argv, "-cpu"), Argv{"max"});
  EXPECT_EQ(ValuesOf(argv, "-smp"), Argv{"2"});
  EXPECT_EQ(ValuesOf(argv, "-m"), Argv{"512M"});
  EXPECT_EQ(ValuesOf(argv, "-object"),
            Argv{"memory-backend-file,id=fe-ram,size=512M,mem-path=/data/vm-1/mem.bin,share=on"});
  EXPECT_EQ(ValuesOf(argv, "-kernel"), Argv{"/data/vm-1/boot/vmlinuz"});
  EXPECT_EQ(ValuesOf(argv, "-initrd"), Argv{"/data/vm-1/boot/initrd.img"});
  EXPECT_EQ(ValuesOf(argv, "-append"), Argv{SourceConfig().append});
  EXPECT_EQ(ValuesOf(argv, "-drive"),
            (Argv{
                "file=/data/vm-1/disks/root.qcow2,format=qcow2,if=none,id=root",
                "file=/data/vm-1/disks/data.raw,format=raw,if=none,id=data",
                "file=/var/lib/forkengine/images/tools.raw,format=raw,if=none,id=tools,readonly=on",
                "file=/data/vm-10/disks/shared.raw,format=raw,if=none,id=sibling,readonly=on",
            }));
  EXPECT_EQ(ValuesOf(argv, "-netdev"), Argv{"tap,id=net0,ifname=fe-tap-1,script=no,downscript=no"});
  EXPECT_EQ(ValuesOf(argv, "-device"), (Argv{
                                           "virtio-serial-pci,id=fe-virtio-serial",
                                           "virtserialport,bus=fe-virtio-serial.0,chardev=agent,"
                                           "name=org.forkengine.identity.0,id=agent-port",
                                           "virtio-blk-pci,drive=root,id=root-dev",
                                           "virtio-blk-pci,drive=data,id=data-dev",
                                           "virtio-blk-pci,drive=tools,id=tools-dev",
                                           "virtio-blk-pci,drive=sibling,id=sibling-dev",
                                           "virtio-net-pci,netdev=net0,mac=02:fe:00:00:00:01,id=net0-dev",
                                           "vhost-vsock-pci,id=vsock0,guest-cid=3",
                                           "vmgenid,id=fe-vmgenid,guid=9c1f8a2e-5d4b-4c3a-8e7f-1a2b3c4d5e6f",
                                       }));
  EXPECT_EQ(ValuesOf(argv, "-chardev"), (Argv{
                                            "socket,id=console,path=/data/vm-1/run/console.sock,server=on,wait=off",
                                            "file,id=seriallog,path=/data/vm-1/logs/serial.log",
                                            "socket,id=agent,path=/run/forkengine/vm-1/agent.sock,server=on,wait=off",
                                            "socket,id=fe-qmp,path=/data/vm-1/run/qmp.sock,server=on,wait=off",
                                        }));
  EXPECT_EQ(ValuesOf(argv, "-serial"), Argv{"chardev:seriallog"});
  EXPECT_EQ(ValuesOf(argv, "-mon"), Argv{"chardev=fe-qmp,mode=control"});
  EXPECT_EQ(std::count(argv.begin(), argv.end(), "-incoming"), 0);
  for (const char* flag : {"-nodefaults", "-no-user-config", "-no-reboot"}) {
    EXPECT_EQ(std::count(argv.begin(), argv.end(), flag), 1) << flag;
  }
}

TEST(QemuArgvTest, RestoreArgvIsBootArgvPlusIncomingDefer) {
  Argv boot = BuildArgv(SourceConfig());
  Argv restore = BuildArgv(SourceConfig(), Incoming{Incoming::Kind::kDefer, ""});
  boot.insert(boot.end(), {"-incoming", "defer"});
  EXPECT_EQ(restore, boot);
}

TEST(QemuArgvTest, ExecCatIncomingShellQuotesTheFile) {
  Argv argv = BuildArgv(SourceConfig(), Incoming{Incoming::Kind::kExecCat, "/data/vm 1/it's/vmstate"});
  EXPECT_EQ(ValuesOf(argv, "-incoming"), Argv{"exec:cat '/data/vm 1/it'\\''s/vmstate'"});
}

TEST(QemuArgvTest, CommasInOptionValuesAreDoubled) {
  Config config = SourceConfig();
  config.drives = {Drive{"d", "/data/a,b/disk.raw", "raw", "virtio-blk-pci", false, Json::object()}};
  config.qmp_socket = "/run/x,y/qmp.sock";
  config.memory_file = "/data/m,em";
  config.kernel = "/data/k,ernel";  // -kernel takes its argument verbatim
  const Argv argv = BuildArgv(config);
  EXPECT_EQ(ValuesOf(argv, "-drive"), Argv{"file=/data/a,,b/disk.raw,format=raw,if=none,id=d"});
  EXPECT_EQ(ValuesOf(argv, "-chardev").back(), "socket,id=fe-qmp,path=/run/x,,y/qmp.sock,server=on,wait=off");
  EXPECT_EQ(ValuesOf(argv, "-object"), Argv{"memory-backend-file,id=fe-ram,size=512M,mem-path=/data/m,,em,share=on"});
  EXPECT_EQ(ValuesOf(argv, "-kernel"), Argv{"/data/k,ernel"});
}

TEST(QemuArgvTest, OptionalPartsAreLeftOutWhenUnset) {
  Config config;
  config.qmp_socket = "/data/vm-1/qmp.sock";
  const Argv argv = BuildArgv(config);
  EXPECT_EQ(argv, (Argv{"qemu-system-x86_64", "-nodefaults", "-no-user-config", "-no-reboot", "-display", "none",
                        "-machine", "q35", "-accel", "tcg", "-smp", "1", "-m", "256M", "-chardev",
                        "socket,id=fe-qmp,path=/data/vm-1/qmp.sock,server=on,wait=off", "-mon",
                        "chardev=fe-qmp,mode=control"}));
}

TEST(QemuArgvTest, MigrationUrisStreamThroughCat) {
  EXPECT_EQ(ExecCatToUri("/a b/vmstate"), "exec:cat > '/a b/vmstate'");
  EXPECT_EQ(ExecCatFromUri("/a/vmstate"), "exec:cat '/a/vmstate'");
  EXPECT_EQ(ShellQuote("it's"), "'it'\\''s'");
  EXPECT_EQ(EscapeOptionValue("a,,b"), "a,,,,b");
}

}  // namespace
}  // namespace fe::hypervisor::qemu
