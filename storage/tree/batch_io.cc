#include "storage/tree/batch_io.h"

#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>

namespace fe::storage::tree {
namespace {

int ResultOf(long rc) { return rc < 0 ? -errno : static_cast<int>(rc); }

class SyscallBatchIo final : public BatchIo {
 public:
  std::string_view Name() const override { return "syscalls"; }

  void Openat2(int dir_fd, const char* name, const open_how* how, int* result) override {
    *result = ResultOf(::syscall(SYS_openat2, dir_fd, name, how, sizeof(*how)));
  }
  void Statx(int dir_fd, const char* name, int flags, unsigned mask, struct statx* out, int* result) override {
    *result = ResultOf(::statx(dir_fd, name, flags, mask, out));
  }
  void Mkdirat(int dir_fd, const char* name, mode_t mode, int* result) override {
    *result = ResultOf(::mkdirat(dir_fd, name, mode));
  }
  void Symlinkat(const char* target, int dir_fd, const char* name, int* result) override {
    *result = ResultOf(::symlinkat(target, dir_fd, name));
  }
  void Linkat(int old_dir_fd, const char* old_name, int new_dir_fd, const char* new_name, int* result) override {
    *result = ResultOf(::linkat(old_dir_fd, old_name, new_dir_fd, new_name, 0));
  }
  void Close(int fd) override { ::close(fd); }
  void Flush() override {}
};

}  // namespace

std::unique_ptr<BatchIo> MakeSyscallBatchIo() { return std::make_unique<SyscallBatchIo>(); }

}  // namespace fe::storage::tree
