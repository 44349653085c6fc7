// Runs a command in a throwaway QEMU guest: for tests that need kernel features this host lacks
// (device-mapper, say). "Boot this kernel with an initramfs holding these files and modules, run this
// command, give back the serial output and the command's exit status."
//
// The guest is the host's Debian kernel (linux-image-amd64) under QEMU TCG (`-accel tcg`: KVM here is
// not usable for stock guests), booted straight into a generated /init (busybox-static) that mounts
// proc, sysfs, devtmpfs on /dev and tmpfs on /tmp and /run, insmods the requested modules in order,
// runs the command with /tmp as working directory, prints an end marker with its exit status (and a
// per-run nonce, so guest output cannot forge it) and powers off. A Debian kernel reaches /init in
// about 5 s here. Binaries are copied with every shared library `ldd` lists, at the same paths.
//
// Environment: FE_GUEST_KERNEL overrides the kernel image, FE_GUEST_MODULES the module tree
// (default /lib/modules/<version of the kernel image>).
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "base/status.h"
#include "tests/guest/initramfs.h"

namespace fe::test {

struct GuestFile {
  std::string host_path;
  std::string guest_path;       // absolute; avoid /tmp and /run, which are mounted over
  bool with_libraries = false;  // also copy the shared libraries `ldd host_path` lists
  // Without its debug sections (objcopy --strip-debug): a debug or ASan build of a big binary
  // (forkd: ~300 MB) would not fit in the guest's memory otherwise.
  bool strip_debug = false;
};

struct GuestSpec {
  std::vector<std::string> modules;  // names as modprobe knows them ("dm-thin-pool"), loaded in order
  std::vector<GuestFile> files;
  std::string command;                // run by busybox sh
  std::chrono::seconds timeout{120};  // from starting QEMU to power-off
  int memory_mib = 512;
  // Appended to "console=ttyS0 panic=-1". "quiet" keeps kernel errors but drops warnings; use
  // "loglevel=7" to see every kernel message while debugging a test.
  std::string kernel_args = "quiet";
  // Appended to QEMU's command line: devices, netdevs and chardevs the test needs (a NIC, a
  // virtio-serial port on a host socket). The runner itself uses -nodefaults, so nothing else is there.
  std::vector<std::string> qemu_args;
};

struct GuestResult {
  int exit_code = -1;       // the command's exit status; -1 when the guest never reported one
  bool timed_out = false;   // QEMU was killed at the timeout
  std::string serial;       // everything the guest printed on its console (kernel messages included)
  std::string qemu_output;  // QEMU's own stdout/stderr
  std::chrono::milliseconds elapsed{0};
  // exit status, timeout and elapsed time in one line, for test messages
  std::string Summary() const;
};

// Why a guest cannot run on this host (no qemu-system-x86_64, kernel image, module tree or
// busybox), or empty when it can.
std::string GuestUnavailableReason();

// Boots the guest and waits for it. Fails only when the guest could not be prepared or started (a
// missing module, an unreadable file); a failing command or a hung guest is a GuestResult.
Result<GuestResult> RunGuest(const GuestSpec& spec);

// The pieces RunGuest builds its image from, for tests that boot a guest of their own (through the
// engine, say). The kernel image the guest boots ("" when there is none).
std::string GuestKernel();
// The start of a guest's /init: busybox sh mounting proc, sysfs, devtmpfs on /dev and tmpfs on /tmp
// and /run, busybox's applets installed, PATH set.
std::string InitScriptPreamble();
// Adds the modules' .ko files (and nothing for built-in ones) under /fe-guest/modules; their guest
// paths, in load order.
Result<std::vector<std::string>> AddGuestModules(InitramfsBuilder& image, const std::vector<std::string>& modules);
// Adds the files, with the shared libraries of those that ask for them. Stripped copies
// (GuestFile::strip_debug) are made in `work_dir`, which must then be given and outlive the image's
// Write.
Status AddGuestFiles(InitramfsBuilder& image, const std::vector<GuestFile>& files, const std::string& work_dir = "");

}  // namespace fe::test
