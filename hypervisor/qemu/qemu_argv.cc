#include "hypervisor/qemu/qemu_argv.h"

namespace fe::hypervisor::qemu {

std::string EscapeOptionValue(std::string_view value) {
  std::string escaped;
  escaped.reserve(value.size());
  for (char c : value) {
    escaped += c;
    if (c == ',') escaped += ',';
  }
  return escaped;
}

std::string ShellQuote(std::string_view value) {
  std::string quoted = "'";
  for (char c : value) {
    if (c == '\'') {
      quoted += "'\\''";
    } else {
      quoted += c;
    }
  }
  return quoted + "'";
}

std::string ExecCatToUri(const std::string& file) { return "exec:cat > " + ShellQuote(file); }
std::string ExecCatFromUri(const std::string& file) { return "exec:cat " + ShellQuote(file); }

std::vector<std::string> BuildArgv(const Config& config, const Incoming& incoming,
                                   const std::string& shared_memory_file) {
  // -no-reboot: a guest that reboots (or panics with panic=N) ends its QEMU, which the engine sees as
  // the VM stopping, instead of booting again behind the engine's back (or looping on a panic).
  std::vector<std::string> argv = {config.binary, "-nodefaults", "-no-user-config", "-no-reboot", "-display", "none"};
  auto add = [&argv](std::initializer_list<std::string> args) { argv.insert(argv.end(), args); };

  std::string machine = config.machine;
  if (!config.memory_file.empty()) machine += ",memory-backend=fe-ram";
  add({"-machine", machine, "-accel", config.accel});
  if (!config.cpu.empty()) add({"-cpu", config.cpu});
  add({"-smp", std::to_string(config.cpus), "-m", std::to_string(config.memory_mib) + "M"});
  if (!config.memory_file.empty()) {
    // share=off maps the file MAP_PRIVATE: the guest's writes go to pages of its own, never the file.
    const bool shared = !shared_memory_file.empty();
    add({"-object", "memory-backend-file,id=fe-ram,size=" + std::to_string(config.memory_mib) +
                        "M,mem-path=" + EscapeOptionValue(shared ? shared_memory_file : config.memory_file) +
                        (shared ? ",share=off" : ",share=on")});
  }
  // -kernel, -initrd and -append take their argument verbatim (no option-string parsing).
  if (!config.kernel.empty()) add({"-kernel", config.kernel});
  if (!config.initrd.empty()) add({"-initrd", config.initrd});
  if (!config.append.empty()) add({"-append", config.append});

  for (const Chardev& chardev : config.chardevs) {
    std::string spec = chardev.backend + ",id=" + chardev.id + ",path=" + EscapeOptionValue(chardev.path);
    if (chardev.backend == "socket") spec += ",server=on,wait=off";
    add({"-chardev", spec});
  }
  if (!config.serial.empty()) add({"-serial", "chardev:" + config.serial});
  bool virtio_serial = false;
  for (const Chardev& chardev : config.chardevs) {
    if (chardev.virtio_port.empty()) continue;
    if (!virtio_serial) add({"-device", "virtio-serial-pci,id=fe-virtio-serial"});
    virtio_serial = true;
    add({"-device", "virtserialport,bus=fe-virtio-serial.0,chardev=" + chardev.id +
                        ",name=" + EscapeOptionValue(chardev.virtio_port) + ",id=" + chardev.id + "-port"});
  }
  add({"-chardev", "socket,id=fe-qmp,path=" + EscapeOptionValue(config.qmp_socket) + ",server=on,wait=off", "-mon",
       "chardev=fe-qmp,mode=control"});

  for (const Drive& drive : config.drives) {
    std::string spec = "file=" + EscapeOptionValue(drive.file) + ",format=" + drive.format + ",if=none,id=" + drive.id;
    if (drive.read_only) spec += ",readonly=on";
    add({"-drive", spec, "-device", drive.device + ",drive=" + drive.id + ",id=" + drive.id + "-dev"});
  }
  for (const Nic& nic : config.nics) {
    add({"-netdev", "tap,id=" + nic.id + ",ifname=" + nic.ifname + ",script=no,downscript=no", "-device",
         nic.device + ",netdev=" + nic.id + ",mac=" + nic.mac + ",id=" + nic.id + "-dev"});
  }
  if (config.vsock) {
    add({"-device",
         "vhost-vsock-pci,id=" + config.vsock->id + ",guest-cid=" + std::to_string(config.vsock->guest_cid)});
  }
  if (!config.vmgenid.empty()) add({"-device", "vmgenid,id=fe-vmgenid,guid=" + config.vmgenid});

  switch (incoming.kind) {
    case Incoming::Kind::kNone: break;
    case Incoming::Kind::kDefer: add({"-incoming", "defer"}); break;
    case Incoming::Kind::kExecCat: add({"-incoming", ExecCatFromUri(incoming.file)}); break;
  }
  return argv;
}

}  // namespace fe::hypervisor::qemu
