#include "engine/vm/huge_pages.h"

#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include <charconv>
#include <string>

#include "base/atomic_file.h"
#include "base/unique_fd.h"
#include "engine/vm/vm_runner.h"

#ifndef MADV_COLLAPSE
#define MADV_COLLAPSE 25
#endif

namespace fe::engine::vm {
namespace {

bool ParseHex(std::string_view text, uint64_t& value) {
  auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value, 16);
  return error == std::errc() && end == text.data() + text.size();
}

}  // namespace

Result<MemoryRange> FindGuestRamMapping(std::string_view proc_maps, std::string_view origin, uint64_t max_bytes) {
  MemoryRange best;
  while (!proc_maps.empty()) {
    const size_t newline = proc_maps.find('\n');
    std::string_view line = proc_maps.substr(0, newline);
    proc_maps = newline == std::string_view::npos ? std::string_view() : proc_maps.substr(newline + 1);
    // "start-end perms offset dev inode [path]": anonymous mappings have inode 0 and no path.
    std::string_view fields[6];
    size_t count = 0;
    while (count < 6 && !line.empty()) {
      const size_t begin = line.find_first_not_of(' ');
      if (begin == std::string_view::npos) break;
      line.remove_prefix(begin);
      const size_t end = line.find(' ');
      fields[count++] = line.substr(0, end);
      line = end == std::string_view::npos ? std::string_view() : line.substr(end);
    }
    if (count != 5 || fields[1] != "rw-p" || fields[4] != "0") continue;
    const size_t dash = fields[0].find('-');
    uint64_t start = 0;
    uint64_t end = 0;
    if (dash == std::string_view::npos || !ParseHex(fields[0].substr(0, dash), start) ||
        !ParseHex(fields[0].substr(dash + 1), end) || end <= start) {
      continue;
    }
    if (end - start > best.length && end - start <= max_bytes) best = MemoryRange{start, end - start};
  }
  if (best.length < kMinGuestRamBytes) {
    return Status::NotFound(std::string(origin) + ": no anonymous read-write mapping of at least " +
                            std::to_string(kMinGuestRamBytes >> 20) + " MiB (guest RAM)");
  }
  return best;
}

Result<MemoryRange> CollapseGuestRamIntoHugePages(const ProcessRecord& record) {
  const std::string maps_path = "/proc/" + std::to_string(record.pid) + "/maps";
  if (!VmProcessAlive(record)) return Status::NotFound("process " + std::to_string(record.pid) + " no longer runs");
  Result<std::string> maps = ReadSmallFile(maps_path, 16 << 20);
  if (!maps.ok()) return Status::NotFound(maps.status().message());
  const uint64_t host_ram =
      static_cast<uint64_t>(::sysconf(_SC_PHYS_PAGES)) * static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
  FE_ASSIGN_OR_RETURN(MemoryRange ram, FindGuestRamMapping(*maps, maps_path, host_ram));
  UniqueFd pidfd(static_cast<int>(::syscall(SYS_pidfd_open, record.pid, 0)));
  if (!pidfd) return Status::FromErrno(errno, "pidfd_open", "process " + std::to_string(record.pid));
  // The pid could have been reused between the check and pidfd_open: the pidfd pins one process.
  if (!VmProcessAlive(record)) return Status::NotFound("process " + std::to_string(record.pid) + " no longer runs");
  iovec range{reinterpret_cast<void*>(ram.start), ram.length};
  if (::syscall(SYS_process_madvise, pidfd.get(), &range, 1, MADV_COLLAPSE, 0) < 0) {
    const int error = errno;
    const std::string what = "process_madvise(MADV_COLLAPSE) of " + std::to_string(ram.length >> 20) +
                             " MiB of guest RAM in process " + std::to_string(record.pid);
    if (error == ENOSYS) return Status::Unsupported(what + ": this kernel has no process_madvise (Linux >= 5.10)");
    // EINVAL is both a kernel without MADV_COLLAPSE (before 6.1) and 6.1 on a range it could not
    // collapse this time (a page it could not isolate); EAGAIN and ENOMEM are transient too.
    return Status::FromErrno(error, what, "(in " + maps_path + ")");
  }
  return ram;
}

}  // namespace fe::engine::vm
