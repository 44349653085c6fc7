#include "engine/vm/ram_preflush.h"

#include <fcntl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "base/fs_util.h"

namespace fe::engine::vm {
namespace {

// The cachestat syscall's ABI (include/uapi/linux/mman.h); glibc 2.36 has neither the wrapper nor
// the number.
#ifndef __NR_cachestat
#define __NR_cachestat 451
#endif
struct CachestatRange {
  uint64_t offset;
  uint64_t length;  // 0: to the end of the file
};
struct Cachestat {
  uint64_t nr_cache;
  uint64_t nr_dirty;
  uint64_t nr_writeback;
  uint64_t nr_evicted;
  uint64_t nr_recently_evicted;
};

}  // namespace

Result<std::optional<uint64_t>> DirtyBytes(int fd) {
  CachestatRange range{0, 0};
  Cachestat stat{};
  if (::syscall(__NR_cachestat, fd, &range, &stat, 0) != 0) {
    if (errno == ENOSYS) return std::optional<uint64_t>();
    return Status::FromErrno(errno, "cachestat", FdPath(fd));
  }
  return std::optional<uint64_t>((stat.nr_dirty + stat.nr_writeback) * static_cast<uint64_t>(::sysconf(_SC_PAGESIZE)));
}

Status WriteBackDirtyPages(int fd, const std::string& display) {
  constexpr unsigned kFlags = SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE | SYNC_FILE_RANGE_WAIT_AFTER;
  while (::sync_file_range(fd, 0, 0, kFlags) != 0) {
    if (errno != EINTR) return Status::FromErrno(errno, "sync_file_range", display);
  }
  return Status::Ok();
}

Result<PreflushReport> PreflushRamFile(int fd, const std::string& display, const PreflushPolicy& policy,
                                       CpuThrottle* throttle, const Clock& clock) {
  PreflushReport report;
  const Clock::SteadyPoint start = clock.Now();
  Result<std::optional<uint64_t>> dirty = DirtyBytes(fd);
  if (!dirty.ok()) return dirty.status();
  const bool blind = !dirty->has_value();
  uint64_t before = dirty->value_or(0);
  size_t next_step = 0;
  int stalled_rounds = 0;
  while (report.rounds < (blind ? policy.max_rounds_blind : policy.max_rounds)) {
    if (!blind && before <= kSmallRemainder) {
      report.converged = true;
      break;
    }
    const Clock::SteadyPoint round_start = clock.Now();
    FE_RETURN_IF_ERROR(WriteBackDirtyPages(fd, display));
    const int64_t round_us = std::max<int64_t>(1, clock.MicrosSince(round_start));
    ++report.rounds;
    report.written_bytes += before;
    if (blind) continue;
    Result<std::optional<uint64_t>> after = DirtyBytes(fd);
    if (!after.ok()) return after.status();
    const uint64_t left = after->value_or(0);
    // What is left, written at the rate this round wrote (rounds of less than a few MiB say little about
    // the rate: they are mostly the syscall's own cost, so they count as at least 1 GiB/s).
    const double bytes_per_us = std::max(static_cast<double>(before) / static_cast<double>(round_us), 1073.741824);
    const double left_us = static_cast<double>(left) / bytes_per_us;
    if (left <= kSmallRemainder || left_us <= static_cast<double>(policy.pause_target.count())) {
      report.converged = true;
      before = left;
      break;
    }
    if (clock.MicrosSince(start) >= std::chrono::microseconds(policy.max_time).count()) {
      before = left;
      break;
    }
    // Not shrinking by at least a quarter: the guest dirties about as fast as the rounds write.
    stalled_rounds = left * 4 > before * 3 ? stalled_rounds + 1 : 0;
    if (stalled_rounds > 0 && throttle != nullptr && next_step < policy.throttle_steps.size()) {
      if (Status set = throttle->Set(policy.throttle_steps[next_step]); !set.ok()) {
        report.throttle_error = set.Annotate("throttling the VM of " + display).message();
        throttle = nullptr;
      } else {
        if (report.throttle_started_us < 0) report.throttle_started_us = clock.MicrosSince(start);
        report.throttle_percent = policy.throttle_steps[next_step++];
      }
      stalled_rounds = 0;
    } else if (stalled_rounds >= 3 && (throttle == nullptr || next_step >= policy.throttle_steps.size())) {
      before = left;  // nothing left to gain
      break;
    }
    before = left;
  }
  if (!blind) report.dirty_left = before;
  report.preflush_us = clock.MicrosSince(start);
  return report;
}

}  // namespace fe::engine::vm
