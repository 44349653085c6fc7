// The QEMU configuration of one instance, as forkengine stores it: <instance dir>/qemu-config.json.
//
// QEMU has no configuration file of its own that covers a whole VM, so the project keeps this typed
// description and builds the command line from it (qemu_argv.h). Every path is absolute. Paths into
// the instance directory (drives, kernel, initrd, the guest-RAM file, chardev and QMP sockets) are
// what a fork rewrites (qemu_fork.h); `append`, the kernel command line, is free text and is never
// rewritten.
//
// Example:
//   {
//     "machine": "q35", "accel": "tcg", "cpus": 2, "memory_mib": 512,
//     "memory_file": "/data/vm-1/mem.bin",
//     "kernel": "/data/vm-1/vmlinuz", "initrd": "/data/vm-1/initrd.img",
//     "append": "console=ttyS0 root=/dev/vda",
//     "drives": [{"id": "root", "file": "/data/vm-1/root.qcow2", "format": "qcow2"},
//                {"id": "base", "file": "/images/tools.raw", "read_only": true}],
//     "nics": [{"id": "net0", "ifname": "fe-tap1", "mac": "02:fe:00:00:00:01"}],
//     "chardevs": [{"id": "console", "backend": "socket", "path": "/data/vm-1/console.sock"},
//                  {"id": "identity", "backend": "socket", "path": "/data/vm-1/identity.sock",
//                   "virtio_port": "org.forkengine.identity.0"}],
//     "serial": "console",
//     "qmp_socket": "/data/vm-1/qmp.sock",
//     "vsock": {"id": "vsock0", "guest_cid": 3},
//     "vmgenid": "9c1f8a2e-5d4b-4c3a-8e7f-1a2b3c4d5e6f"
//   }
//
// Unknown fields, at the top level and inside each drive, NIC, chardev and vsock object, are kept
// through a read-modify-write (in `extra`) but never interpreted. Parse errors are InvalidArgument
// and name the file and the field ("…/qemu-config.json: field 'drives[1].file': expected a string").
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/status.h"

namespace fe::hypervisor::qemu {

inline constexpr char kConfigFile[] = "qemu-config.json";
// In a snapshot directory: the migration stream of the stopped VM (device state, and RAM unless the
// RAM lives in `memory_file`) and a small description of it (qemu_controller.h).
inline constexpr char kStateFile[] = "vmstate";
inline constexpr char kSnapshotInfoFile[] = "qemu-snapshot.json";

using Json = nlohmann::ordered_json;

struct Drive {
  std::string id;                         // QEMU id: a letter, then letters, digits, '-', '.', '_'
  std::string file;                       // absolute
  std::string format = "raw";             // "raw" or "qcow2"
  std::string device = "virtio-blk-pci";  // the guest device the drive is attached to
  bool read_only = false;
  Json extra = Json::object();
};

// A NIC backed by a host TAP device (-netdev tap + a virtio-net device).
struct Nic {
  std::string id;
  std::string ifname;  // host TAP device, at most 15 bytes
  std::string mac;     // "xx:xx:xx:xx:xx:xx", lower-case hex
  std::string device = "virtio-net-pci";
  Json extra = Json::object();
};

// A character device: a Unix socket QEMU listens on (server=on,wait=off) or a file it writes. It is
// the first serial port when Config::serial names it, or a named virtio-serial port in the guest
// (/dev/virtio-ports/<virtio_port>) when `virtio_port` is set: the channel of the identity handoff
// (hypervisor/identity_handoff.h, kIdentitySerialPortName) is such a port.
struct Chardev {
  std::string id;
  std::string backend;      // "socket" or "file"
  std::string path;         // absolute
  std::string virtio_port;  // empty: not a virtio-serial port
  Json extra = Json::object();
};

struct Vsock {
  std::string id = "vsock0";
  uint32_t guest_cid = 0;  // >= 3
  Json extra = Json::object();
};

struct Config {
  std::string binary = "qemu-system-x86_64";
  std::string machine = "q35";
  std::string accel = "tcg";
  std::string cpu;  // -cpu model; empty: QEMU's default
  int cpus = 1;
  uint64_t memory_mib = 256;
  // Guest RAM in a shared file (memory-backend-file, share=on): snapshots then leave RAM out of the
  // saved state (x-ignore-shared) and a fork clones the file. Empty: anonymous RAM.
  std::string memory_file;
  std::string kernel;  // empty: no -kernel (firmware boots from a drive)
  std::string initrd;
  std::string append;  // the kernel command line: free text, never rewritten
  std::vector<Drive> drives;
  std::vector<Nic> nics;
  std::vector<Chardev> chardevs;
  std::string serial;      // id of the chardev on the first serial port; empty: none
  std::string qmp_socket;  // the QMP socket (the plugin's API socket); required
  std::optional<Vsock> vsock;
  std::string vmgenid;  // VM generation ID GUID, or "auto"; empty: no vmgenid device
  Json extra = Json::object();
};

// `origin` names the text in error messages (the file path).
Result<Config> ParseConfig(std::string_view json_text, std::string_view origin);
// Pretty-printed JSON with a trailing newline; ParseConfig(SerializeConfig(c)) == c.
std::string SerializeConfig(const Config& config);

// Checks what ParseConfig cannot see field by field: the QEMU device ids the command line will use are
// unique, chardev ids and virtio port names too, the serial chardev exists, Unix socket paths fit in
// sockaddr_un. Errors name `origin` and the field.
Status ValidateConfig(const Config& config, std::string_view origin);

// <dir>/qemu-config.json: read + parse + validate, and validate + write atomically.
Result<Config> ReadConfig(const std::string& instance_dir);
Status WriteConfig(const std::string& instance_dir, const Config& config);

}  // namespace fe::hypervisor::qemu
