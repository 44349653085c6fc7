#include "tests/e2e/fork_guest.h"

#include <time.h>

#include <fstream>
#include <sstream>
#include <thread>

#include "hypervisor/identity_handoff.h"
#include "hypervisor/qemu/qemu_config.h"
#include "tests/guest/guest_runner.h"
#include "tests/guest/initramfs.h"

namespace fe::e2e {
namespace {

using Clock = std::chrono::steady_clock;
namespace qemu = hypervisor::qemu;

// virtio-net and the virtio-serial console with what they depend on, in load order.
const std::vector<std::string> kModules = {"virtio_ring",           "virtio",     "virtio_pci_legacy_dev",
                                           "virtio_pci_modern_dev", "virtio_pci", "failover",
                                           "net_failover",          "virtio_net", "virtio_console"};

// /init. The address comes from the MAC (02:fe:a:b:c:d is a.b.c.d, /16: the engine's allocator on
// its default subnet), so the booted source has the identity the engine leased it. The clock is read
// with adjtimex (busybox's date has no sub-second format).
std::string InitScript(const std::vector<std::string>& modules) {
  std::string script = fe::test::InitScriptPreamble();
  for (const std::string& module : modules) {
    script += "insmod " + module + " || echo \"FE-E2E: insmod " + module + " failed\"\n";
  }
  script +=
      "read mac < /sys/class/net/eth0/address\n"
      "IFS=: ; set -- $mac ; unset IFS\n"
      "ip addr add $((0x$3)).$((0x$4)).$((0x$5)).$((0x$6))/16 dev eth0\n"
      "ip link set lo up\n"
      "ip link set eth0 up\n"
      "/fe-guest/forkagent --log &\n"
      // fe.fill_mib=N (forkbench --e2e): N MiB of RAM written with non-zero data before the first beat,
      // so a snapshot has that much to save (migration skips zero pages: an idle guest saves little).
      "for word in $(cat /proc/cmdline); do case $word in fe.fill_mib=*) fill=${word#fe.fill_mib=} ;; "
      "fe.dirty_mib=*) dirty_mib=${word#fe.dirty_mib=} ;; fe.dirty_rate=*) dirty_rate=${word#fe.dirty_rate=} ;; "
      "fe.beats=*) beats=${word#fe.beats=} ;; esac; done\n"
      "if [ -n \"$fill\" ]; then\n"
      "  mkdir -p /fill && mount -t tmpfs -o size=${fill}m tmpfs /fill\n"
      "  yes forkengine | head -c $((fill * 1048576)) > /fill/data\n"
      "fi\n"
      // fe.dirty_mib=N fe.dirty_rate=R: a busy guest, rewriting pages of N MiB at R MiB/s for as long as
      // it runs (tests/e2e/guest_dirtier_main.cc), so a live fork finds its RAM file dirty.
      "if [ -n \"$dirty_mib\" ] && [ -n \"$dirty_rate\" ]; then\n"
      "  /fe-guest/fe-guest-dirtier $dirty_mib $dirty_rate &\n"
      "fi\n"
      // fe.beats=N: an idle guest after N beats (the lifecycle keeper's idle standby finds it so).
      "i=0\n"
      "while [ -z \"$beats\" ] || [ $i -lt \"$beats\" ]; do\n"
      "  read mac < /sys/class/net/eth0/address\n"
      "  set -- $(ip -o -4 addr show dev eth0) ; addr=$4\n"
      "  set -- $(head -c 256 /dev/urandom | md5sum) ; rand=$1\n"
      "  now=$(adjtimex | awk '/tv_sec/ {s=$2} /tv_usec/ {u=$2} END {printf \"%s%03d\", s, int(u/1000)}')\n"
      "  echo \"beat $i mac=$mac ip=$addr rand=$rand time=$now\"\n"
      "  i=$((i+1))\n"
      "  usleep 200000\n"
      "done\n"
      "echo \"FE-E2E: idle after $i beats\"\n"
      "while true; do sleep 3600; done\n";
  return script;
}

// "key=value" out of a beat line's words.
std::string Field(const std::vector<std::string>& words, const std::string& key) {
  for (const std::string& word : words) {
    if (word.size() > key.size() && word.compare(0, key.size() + 1, key + "=") == 0) return word.substr(key.size() + 1);
  }
  return "";
}

bool AllDigits(const std::string& text) {
  return !text.empty() && text.size() < 19 && text.find_first_not_of("0123456789") == std::string::npos;
}

int64_t HostNowMs() {
  timespec now{};
  ::clock_gettime(CLOCK_REALTIME, &now);
  return static_cast<int64_t>(now.tv_sec) * 1000 + now.tv_nsec / 1000000;
}

}  // namespace

Status MakeForkGuest(const std::string& dir, uint64_t memory_mib, const std::string& forkagent,
                     const std::string& dirtier) {
  fe::test::InitramfsBuilder image;
  image.AddFile("/bin/busybox", "/bin/busybox", 0755);
  Result<std::vector<std::string>> modules = fe::test::AddGuestModules(image, kModules);
  if (!modules.ok()) return modules.status();
  FE_RETURN_IF_ERROR(fe::test::AddGuestFiles(
      image, {{forkagent, "/fe-guest/forkagent", true}, {dirtier, "/fe-guest/fe-guest-dirtier", true}}));
  image.AddContent("/init", InitScript(*modules), 0755);
  FE_RETURN_IF_ERROR(image.Write(dir + "/initrd.cpio"));

  qemu::Config config;
  config.machine = "pc";
  config.memory_mib = memory_mib;
  config.memory_file = dir + "/mem.bin";
  config.kernel = fe::test::GuestKernel();
  config.initrd = dir + "/initrd.cpio";
  config.append = "console=ttyS0 panic=-1 quiet";
  config.chardevs.push_back(qemu::Chardev{"serial0", "file", dir + "/serial.log", "", qemu::Json::object()});
  config.serial = "serial0";
  config.chardevs.push_back(qemu::Chardev{"identity", "socket", dir + "/identity.sock",
                                          std::string(hypervisor::kIdentitySerialPortName), qemu::Json::object()});
  config.nics = {{"net0", "fetemplate", "02:fe:00:00:00:01", "virtio-net-pci", qemu::Json::object()}};
  config.qmp_socket = dir + "/qmp.sock";
  config.vmgenid = "3a6f1c2e-0b7d-4e59-9c41-2f8d6a0b5e17";
  return qemu::WriteConfig(dir, config);
}

std::vector<Beat> ReadBeats(const std::string& serial_log) {
  std::vector<Beat> beats;
  std::ifstream in(serial_log);
  std::string line;
  while (std::getline(in, line)) {
    if (in.eof()) break;  // no newline yet: the line may still grow
    if (!line.empty() && line.back() == '\r') line.pop_back();
    std::istringstream stream(line);
    std::vector<std::string> words;
    for (std::string word; stream >> word;) words.push_back(word);
    if (words.size() != 6 || words[0] != "beat" || !AllDigits(words[1])) continue;
    Beat beat;
    beat.number = std::stoi(words[1]);
    beat.mac = Field(words, "mac");
    beat.ip = Field(words, "ip");
    beat.rand = Field(words, "rand");
    const std::string time = Field(words, "time");
    if (beat.mac.empty() || beat.rand.size() != 32 || !AllDigits(time)) continue;
    beat.time_ms = std::stoll(time);
    beats.push_back(std::move(beat));
  }
  return beats;
}

std::string Describe(const Beat& beat) {
  return "beat " + std::to_string(beat.number) + " mac=" + beat.mac + " ip=" + beat.ip + " rand=" + beat.rand +
         " time=" + std::to_string(beat.time_ms);
}

Result<Beat> WaitForBeat(const std::string& serial_log, const std::function<bool(const Beat&)>& done,
                         std::chrono::milliseconds timeout) {
  const Clock::time_point deadline = Clock::now() + timeout;
  for (;;) {
    std::vector<Beat> beats = ReadBeats(serial_log);
    for (const Beat& beat : beats) {
      if (done(beat)) return beat;
    }
    if (Clock::now() >= deadline) {
      return Status::Internal(serial_log + ": no such beat within " + std::to_string(timeout.count()) +
                              " ms; last: " + (beats.empty() ? "none" : Describe(beats.back())));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

Result<TimedBeat> NextTimedBeat(const std::string& serial_log, std::chrono::milliseconds timeout) {
  const Clock::time_point deadline = Clock::now() + timeout;
  // The host time at which a beat numbered above `after` first shows, and that beat.
  auto next = [&](int after) -> Result<std::pair<Beat, int64_t>> {
    for (;;) {
      std::vector<Beat> beats = ReadBeats(serial_log);
      if (!beats.empty() && beats.back().number > after) return std::make_pair(beats.back(), HostNowMs());
      if (Clock::now() >= deadline) {
        return Status::Internal(serial_log + ": no beat after " + std::to_string(after) + " within " +
                                std::to_string(timeout.count()) + " ms");
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
  };
  std::vector<Beat> beats = ReadBeats(serial_log);
  Result<std::pair<Beat, int64_t>> previous = next(beats.empty() ? -1 : beats.back().number);
  if (!previous.ok()) return previous.status();
  Result<std::pair<Beat, int64_t>> current = next(previous->first.number);
  if (!current.ok()) return current.status();
  if (current->first.number != previous->first.number + 1) {
    return Status::Internal(serial_log + ": beats " + std::to_string(previous->first.number) + " and " +
                            std::to_string(current->first.number) + " showed at once; cannot time them");
  }
  return TimedBeat{current->first, previous->second, current->second};
}

}  // namespace fe::e2e
