// Metadata syscalls issued in batches. The cloner queues a batch of operations (open, statx, mkdir,
// symlink, link, close), then calls Flush(); the io_uring engine submits the whole batch with one
// syscall, the syscall engine performs each operation as it is queued. The cloner is written once
// against this interface, so forkbench can measure both engines on the same code path.
//
// Results: each operation stores its outcome in *result (a file descriptor or 0 on success, -errno on
// failure) no later than the return of the next Flush(). Names, structs and buffers passed in must
// stay valid until then. One instance belongs to one thread.
#pragma once

#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>

#include <memory>
#include <string_view>

namespace fe::storage::tree {

class BatchIo {
 public:
  virtual ~BatchIo() = default;
  virtual std::string_view Name() const = 0;

  virtual void Openat2(int dir_fd, const char* name, const open_how* how, int* result) = 0;
  virtual void Statx(int dir_fd, const char* name, int flags, unsigned mask, struct statx* out, int* result) = 0;
  virtual void Mkdirat(int dir_fd, const char* name, mode_t mode, int* result) = 0;
  virtual void Symlinkat(const char* target, int dir_fd, const char* name, int* result) = 0;
  virtual void Linkat(int old_dir_fd, const char* old_name, int new_dir_fd, const char* new_name, int* result) = 0;
  // Closing cannot fail in a way the cloner acts on (all fds are read-only or already complete).
  virtual void Close(int fd) = 0;
  virtual void Flush() = 0;
};

std::unique_ptr<BatchIo> MakeSyscallBatchIo();
// Returns nullptr when io_uring is unavailable (old kernel, seccomp, io_uring_disabled sysctl).
std::unique_ptr<BatchIo> MakeUringBatchIo(unsigned queue_depth);

}  // namespace fe::storage::tree
