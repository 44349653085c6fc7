// forkagent in a real guest: the Debian kernel under QEMU TCG with a virtio-net NIC wearing the
// source's MAC and a virtio-serial port org.forkengine.identity.0 on a host Unix socket, and a clock
// that starts in the year 2000 (the stale clock of a long-stored snapshot). The host hands the new
// identity over with HandOffIdentity, as the engine will; the guest prints what its NIC and clock
// look like after forkagent --once has answered. Label e2e.
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <thread>

#include "hypervisor/identity_handoff.h"
#include "tests/guest/guest_runner.h"
#include "tests/support/temp_dir.h"

namespace fe::hypervisor::forkagent {
namespace {

using namespace std::chrono_literals;

// What `command` (a shell command line) printed on stdout.
std::string Output(const std::string& command) {
  std::string output;
  FILE* pipe = ::popen(command.c_str(), "r");
  if (pipe == nullptr) return output;
  char buffer[4096];
  for (size_t got; (got = std::fread(buffer, 1, sizeof(buffer), pipe)) > 0;) output.append(buffer, got);
  ::pclose(pipe);
  return output;
}

// Connects to the QEMU chardev's listening socket, waiting for QEMU to create it.
Result<UniqueFd> ConnectWhenListening(const std::string& path, std::chrono::seconds timeout) {
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::strncpy(address.sun_path, path.c_str(), sizeof(address.sun_path) - 1);
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!fd) return Status::FromErrno(errno, "socket for", path);
    if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0) return fd;
    if (errno != ENOENT && errno != ECONNREFUSED) return Status::FromErrno(errno, "connect to", path);
    if (std::chrono::steady_clock::now() > deadline) return Status::FromErrno(ETIMEDOUT, "connect to", path);
    std::this_thread::sleep_for(50ms);
  }
}

// The integer after `key` in `text`, or -1.
long long ValueAfter(const std::string& text, const std::string& key) {
  size_t at = text.rfind(key);
  return at == std::string::npos ? -1 : std::atoll(text.c_str() + at + key.size());
}

// A guest with the NIC (the source's MAC) and the identity port on `socket_path`, its clock in 2000.
test::GuestSpec AgentGuest(const std::string& socket_path) {
  test::GuestSpec spec;
  spec.modules = {"virtio_ring",           "virtio",     "virtio_pci_legacy_dev",
                  "virtio_pci_modern_dev", "virtio_pci", "failover",
                  "net_failover",          "virtio_net", "virtio_console"};
  // with_libraries: a sanitized build links the agent dynamically; a static one has none to copy.
  spec.files = {{FE_FORKAGENT, "/fe-guest/forkagent", true}};
  spec.memory_mib = 256;
  spec.timeout = 120s;  // a bound for a hung guest; the run takes ~10 s
  spec.qemu_args = {
      "-rtc",     "base=2000-01-01T00:00:00",
      "-netdev",  "user,id=net0",
      "-device",  "virtio-net-pci,netdev=net0,mac=02:fe:0a:64:00:02,romfile=",
      "-chardev", "socket,id=identity,path=" + socket_path + ",server=on,wait=off",
      "-device",  "virtio-serial-pci",
      "-device",  "virtserialport,chardev=identity,name=" + std::string(hypervisor::kIdentitySerialPortName)};
  return spec;
}

TEST(ForkagentGuestTest, GuestAppliesTheHandedOffIdentityAndHostClock) {
  if (std::string why = test::GuestUnavailableReason(); !why.empty()) GTEST_SKIP() << why;
  Result<test::TempDir> dir = test::TempDir::Create();
  ASSERT_TRUE(dir.ok()) << dir.status().ToString();
  const std::string socket_path = dir->Sub("identity.sock");

  test::GuestSpec spec = AgentGuest(socket_path);
  // The source's identity, then the agent, then what the host should now see.
  spec.command =
      "ip addr add 10.0.2.15/24 dev eth0 && ip link set eth0 up && ip route add default via 10.0.2.2 || exit 90\n"
      "echo \"FE-TIME-BEFORE $(date +%s)\"\n"
      "/fe-guest/forkagent --once --log\n"
      "echo \"FE-AGENT-EXIT $?\"\n"
      "echo \"FE-TIME-AFTER $(date +%s)\"\n"
      "ip -o link show eth0; ip -o -4 addr show dev eth0; ip route show\n";

  Result<test::GuestResult> guest = Status::Internal("the guest did not run");
  std::thread runner([&] { guest = test::RunGuest(spec); });

  hypervisor::IdentityHandoff handoff;
  handoff.identity = hypervisor::NetworkIdentity{"fe-tap5", "02:fe:0a:64:00:05", "10.100.0.5", 16, "10.100.0.1", 5};
  handoff.previous_mac = "02:fe:0a:64:00:02";
  handoff.generation = 2;
  Status handed = Status::Internal("not connected");
  Result<UniqueFd> host = ConnectWhenListening(socket_path, 60s);
  if (host.ok()) handed = hypervisor::HandOffIdentity(host->get(), handoff, 90s, "forkagent in the test guest");
  timespec acked{};
  ::clock_gettime(CLOCK_REALTIME, &acked);
  host = Status::Internal("closed");  // hang up, as the engine does after the ack
  runner.join();

  ASSERT_TRUE(guest.ok()) << guest.status().ToString();
  const std::string& serial = guest->serial;
  ASSERT_TRUE(handed.ok()) << handed.ToString() << "\n" << guest->Summary() << "\n" << serial << guest->qemu_output;
  ASSERT_EQ(guest->exit_code, 0) << guest->Summary() << "\n" << serial << guest->qemu_output;
  EXPECT_EQ(ValueAfter(serial, "FE-AGENT-EXIT "), 0) << serial;
  EXPECT_NE(serial.find("link/ether 02:fe:0a:64:00:05"), std::string::npos) << serial;
  EXPECT_NE(serial.find("inet 10.100.0.5/16"), std::string::npos) << serial;
  EXPECT_NE(serial.find("default via 10.100.0.1 dev eth0"), std::string::npos) << serial;
  EXPECT_EQ(serial.find("10.0.2.15"), serial.rfind("10.0.2.15")) << "the source's address is gone: " << serial;
  // The guest's clock started in 2000 and was stepped to the host's: the bound below only separates
  // "stepped" from "not stepped" (26 years), it is not a timing measurement.
  const long long before = ValueAfter(serial, "FE-TIME-BEFORE ");
  const long long after = ValueAfter(serial, "FE-TIME-AFTER ");
  EXPECT_LT(before, 978307200) << "the guest's clock did not start stale (2000): " << serial;
  EXPECT_LT(std::llabs(after - static_cast<long long>(acked.tv_sec)), 120) << serial;
}

// A guest resumed with nobody on the host end of the port: the agent keeps waiting (the kernel says
// EOF/POLLHUP while the host is not connected) and changes nothing.
TEST(ForkagentGuestTest, AgentWithoutAHostKeepsWaitingAndChangesNothing) {
  if (std::string why = test::GuestUnavailableReason(); !why.empty()) GTEST_SKIP() << why;
  Result<test::TempDir> dir = test::TempDir::Create();
  ASSERT_TRUE(dir.ok()) << dir.status().ToString();
  test::GuestSpec spec = AgentGuest(dir->Sub("identity.sock"));
  spec.command =
      "ip addr add 10.0.2.15/24 dev eth0 && ip link set eth0 up || exit 90\n"
      "/fe-guest/forkagent --log & agent=$!\n"
      "sleep 3\n"
      "kill -0 $agent && echo FE-AGENT-STILL-WAITING\n"
      "kill $agent\n"
      "ip -o link show eth0; ip -o -4 addr show dev eth0\n";
  Result<test::GuestResult> guest = test::RunGuest(spec);
  ASSERT_TRUE(guest.ok()) << guest.status().ToString();
  const std::string& serial = guest->serial;
  ASSERT_EQ(guest->exit_code, 0) << guest->Summary() << "\n" << serial << guest->qemu_output;
  EXPECT_NE(serial.find("forkagent: waiting for the host to connect"), std::string::npos) << serial;
  EXPECT_NE(serial.find("FE-AGENT-STILL-WAITING"), std::string::npos) << serial;
  EXPECT_NE(serial.find("link/ether 02:fe:0a:64:00:02"), std::string::npos) << serial;
  EXPECT_NE(serial.find("inet 10.0.2.15/24"), std::string::npos) << serial;
}

// A guest with an ext4 disk mounted read-write: the host freezes it through the agent and, while it is
// frozen, finds the disk image clean (ext4's freeze flushes the journal and clears needs_recovery) with
// what the guest wrote before the freeze on it; then thaws it, and the guest goes on writing. This is
// what a background fork relies on to clone the disks of a source that keeps running.
TEST(ForkagentGuestTest, HostFreezesTheGuestsDiskFilesystemCleanOnDiskUntilItThaws) {
  if (std::string why = test::GuestUnavailableReason(); !why.empty()) GTEST_SKIP() << why;
  Result<test::TempDir> dir = test::TempDir::Create();
  ASSERT_TRUE(dir.ok()) << dir.status().ToString();
  const std::string socket_path = dir->Sub("identity.sock");
  const std::string image = dir->Sub("data.img");
  ASSERT_EQ(std::system(("mkfs.ext4 -q -F " + image + " 64M").c_str()), 0);

  test::GuestSpec spec = AgentGuest(socket_path);
  spec.modules.insert(spec.modules.begin() + 5, {"virtio_blk", "crc32c_generic", "crc16", "mbcache", "jbd2", "ext4"});
  spec.qemu_args.insert(spec.qemu_args.end(), {"-drive", "file=" + image + ",if=virtio,format=raw"});
  // Written before the freeze, not synced: the freeze must write it out. The guest then waits until
  // its agent says it thawed, and writes again.
  spec.command =
      "mkdir -p /data && mount -t ext4 /dev/vda /data || exit 91\n"
      "echo before-the-freeze > /data/written\n"
      "/fe-guest/forkagent --log 2> /agent.log &\n"
      "i=0; until grep -q thawed /agent.log; do i=$((i+1)); [ $i -gt 600 ] && exit 92; usleep 100000; done\n"
      "echo after-the-thaw > /data/later && sync && echo FE-WRITTEN-AFTER-THAW\n"
      "cat /agent.log\n"
      "umount /data && echo FE-UNMOUNTED\n";

  Result<test::GuestResult> guest = Status::Internal("the guest did not run");
  std::thread runner([&] { guest = test::RunGuest(spec); });
  Result<std::vector<std::string>> frozen = Status::Internal("not connected");
  std::string features_while_frozen;
  std::string written_while_frozen;
  Result<GuestThaw> thawed = Status::Internal("not frozen");
  Result<UniqueFd> host = ConnectWhenListening(socket_path, 60s);
  if (host.ok()) frozen = FreezeGuestFilesystems(host->get(), 60s, 90s, "forkagent in the test guest");
  if (frozen.ok()) {
    features_while_frozen = Output("dumpe2fs -h " + image + " 2>/dev/null | grep -i '^Filesystem features'");
    written_while_frozen = Output("debugfs -R 'cat /written' " + image + " 2>/dev/null");
    thawed = ThawGuestFilesystems(host->get(), 30s, "forkagent in the test guest");
  }
  host = Status::Internal("closed");
  runner.join();

  ASSERT_TRUE(guest.ok()) << guest.status().ToString();
  const std::string& serial = guest->serial;
  ASSERT_TRUE(frozen.ok()) << frozen.status().ToString() << "\n" << guest->Summary() << "\n" << serial;
  EXPECT_EQ(*frozen, std::vector<std::string>{"/data"}) << "the root is an initramfs: only the disk is frozen";
  EXPECT_NE(features_while_frozen.find("extent"), std::string::npos) << features_while_frozen;
  EXPECT_EQ(features_while_frozen.find("needs_recovery"), std::string::npos)
      << "a frozen ext4 has its journal flushed: " << features_while_frozen;
  EXPECT_EQ(written_while_frozen, "before-the-freeze\n") << "the freeze wrote the guest's data out to the disk";
  ASSERT_TRUE(thawed.ok()) << thawed.status().ToString() << "\n" << serial;
  EXPECT_TRUE(thawed->held);
  EXPECT_EQ(thawed->thawed, std::vector<std::string>{"/data"});
  ASSERT_EQ(guest->exit_code, 0) << guest->Summary() << "\n" << serial << guest->qemu_output;
  EXPECT_NE(serial.find("FE-WRITTEN-AFTER-THAW"), std::string::npos) << serial;
  EXPECT_NE(serial.find("FE-UNMOUNTED"), std::string::npos) << serial;
}

}  // namespace
}  // namespace fe::hypervisor::forkagent
