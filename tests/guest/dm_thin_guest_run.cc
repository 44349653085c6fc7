// dm_thin_guest_run: runs a program (not a test) in the dm-thin QEMU guest, with scratch disks, for
// hosts whose kernel has no device-mapper. forkbench's dm-thin column is measured this way:
//
//   dm_thin_guest_run [--memory-mib 1024] [--timeout-s 3600] [--disk-gib 32] [--xfs-disk-gib 0]
//                     BINARY [ARGUMENTS...]
//
// --disk-gib: a sparse virtio disk, ext4 in the guest, mounted (with discard) at /mnt/scratch;
// --xfs-disk-gib (0: none): a second one, XFS with reflink=1, at /mnt/xfs. Both images are sparse files
// in a temporary directory under /var/tmp, removed afterwards. BINARY is copied into the guest with its
// libraries and runs as root there; its output (and the guest kernel's messages) is printed after
// the guest powers off, and its exit status is this program's. Times measured inside are a TCG
// guest's (one vCPU, no KVM), comparable only with each other.
#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "base/unique_fd.h"
#include "tests/guest/dm_thin_guest.h"

namespace {

struct Arguments {
  int memory_mib = 1024;
  int timeout_s = 3600;
  int disk_gib = 32;
  int xfs_disk_gib = 0;
  std::string binary;
  std::string arguments;
};

bool Parse(int argc, char** argv, Arguments& args) {
  int i = 1;
  for (; i < argc && std::string(argv[i]).starts_with("--"); i += 2) {
    if (i + 1 >= argc) return false;
    const std::string flag = argv[i];
    const int value = std::atoi(argv[i + 1]);
    if (flag == "--memory-mib")
      args.memory_mib = value;
    else if (flag == "--timeout-s")
      args.timeout_s = value;
    else if (flag == "--disk-gib")
      args.disk_gib = value;
    else if (flag == "--xfs-disk-gib")
      args.xfs_disk_gib = value;
    else
      return false;
  }
  if (i >= argc) return false;
  args.binary = argv[i++];
  for (; i < argc; ++i) args.arguments += std::string(i > 0 ? " " : "") + "'" + argv[i] + "'";
  return args.memory_mib >= 256 && args.timeout_s > 0 && args.disk_gib > 0 && args.xfs_disk_gib >= 0;
}

bool MakeSparseImage(const std::string& path, int gib) {
  fe::UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
  return fd && ::ftruncate(fd.get(), static_cast<off_t>(gib) << 30) == 0;
}

std::string Drive(const std::string& image) {
  return "file=" + image + ",if=virtio,format=raw,cache=unsafe,discard=unmap";
}

}  // namespace

int main(int argc, char** argv) {
  Arguments args;
  if (!Parse(argc, argv, args)) {
    std::fprintf(stderr,
                 "usage: dm_thin_guest_run [--memory-mib 1024] [--timeout-s 3600] [--disk-gib 32] "
                 "[--xfs-disk-gib 0] BINARY [ARGUMENTS...]\n");
    return 2;
  }
  if (std::string missing = fe::test::GuestUnavailableReason(); !missing.empty()) {
    std::fprintf(stderr, "dm_thin_guest_run: %s\n", missing.c_str());
    return 1;
  }
  char dir_template[] = "/var/tmp/dm-thin-guest-run-XXXXXX";
  if (::mkdtemp(dir_template) == nullptr) {
    std::perror("mkdtemp /var/tmp/dm-thin-guest-run-XXXXXX");
    return 1;
  }
  const std::string dir = dir_template;
  fe::test::GuestSpec spec = fe::test::DmThinGuestSpec(args.binary, args.arguments);
  spec.modules.insert(spec.modules.end(), {"virtio_ring", "virtio", "virtio_pci_legacy_dev", "virtio_pci_modern_dev",
                                           "virtio_pci", "virtio_blk"});
  // By its path: busybox sh prefers its own mke2fs applet to one found in PATH.
  std::string prepare =
      "/usr/sbin/mke2fs -q -F -t ext4 -E nodiscard /dev/vda && mkdir -p /mnt/scratch && "
      "mount -o discard /dev/vda /mnt/scratch && ";
  bool made = MakeSparseImage(dir + "/scratch.img", args.disk_gib);
  spec.qemu_args = {"-drive", Drive(dir + "/scratch.img")};
  if (args.xfs_disk_gib > 0) {
    made = made && MakeSparseImage(dir + "/xfs.img", args.xfs_disk_gib);
    spec.qemu_args.insert(spec.qemu_args.end(), {"-drive", Drive(dir + "/xfs.img")});
    spec.modules.push_back("xfs");
    spec.files.push_back({.host_path = "/usr/sbin/mkfs.xfs",
                          .guest_path = "/usr/sbin/mkfs.xfs",
                          .with_libraries = true,
                          .strip_debug = false});
    prepare += "/usr/sbin/mkfs.xfs -q -f -m reflink=1 -K /dev/vdb && mkdir -p /mnt/xfs && mount /dev/vdb /mnt/xfs && ";
  }
  spec.command = "PATH=/usr/sbin:/usr/bin:/sbin:/bin; " + prepare + spec.command;
  spec.memory_mib = args.memory_mib;
  spec.timeout = std::chrono::seconds(args.timeout_s);
  int status = 1;
  if (!made) {
    std::perror(("sparse disk image in " + dir).c_str());
  } else if (fe::Result<fe::test::GuestResult> result = fe::test::RunGuest(spec); !result.ok()) {
    std::fprintf(stderr, "dm_thin_guest_run: %s\n", result.status().ToString().c_str());
  } else {
    std::fwrite(result->serial.data(), 1, result->serial.size(), stdout);
    std::fprintf(stderr, "dm_thin_guest_run: %s\n", result->Summary().c_str());
    status = result->timed_out ? 124 : result->exit_code;
  }
  std::error_code ignored;
  std::filesystem::remove_all(dir, ignored);
  return status;
}
