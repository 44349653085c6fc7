// The io_uring engine of BatchIo. liburing.h is included only here.
#include <liburing.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdlib>

#include "storage/tree/batch_io.h"

namespace fe::storage::tree {
namespace {

// Completions with this user_data carry no result (closes).
constexpr uint64_t kNoResult = 0;

class UringBatchIo final : public BatchIo {
 public:
  UringBatchIo(io_uring ring, io_uring_params params) : ring_(ring), params_(params) {}
  ~UringBatchIo() override {
    Flush();
    io_uring_queue_exit(&ring_);
  }

  std::string_view Name() const override { return "io_uring"; }

  void Openat2(int dir_fd, const char* name, const open_how* how, int* result) override {
    io_uring_prep_openat2(NextSqe(result), dir_fd, name, const_cast<open_how*>(how));
  }
  void Statx(int dir_fd, const char* name, int flags, unsigned mask, struct statx* out, int* result) override {
    io_uring_prep_statx(NextSqe(result), dir_fd, name, flags, mask, out);
  }
  void Mkdirat(int dir_fd, const char* name, mode_t mode, int* result) override {
    io_uring_prep_mkdirat(NextSqe(result), dir_fd, name, mode);
  }
  void Symlinkat(const char* target, int dir_fd, const char* name, int* result) override {
    io_uring_prep_symlinkat(NextSqe(result), target, dir_fd, name);
  }
  void Linkat(int old_dir_fd, const char* old_name, int new_dir_fd, const char* new_name, int* result) override {
    io_uring_prep_linkat(NextSqe(result), old_dir_fd, old_name, new_dir_fd, new_name, 0);
  }
  void Close(int fd) override { io_uring_prep_close(NextSqe(nullptr), fd); }

  void Flush() override {
    while (in_flight_ > 0) {
      int rc = io_uring_submit_and_wait(&ring_, in_flight_);
      if (rc < 0 && rc != -EINTR && rc != -EAGAIN && rc != -EBUSY) {
        FailAllInFlight();
        return;
      }
      Reap();
    }
  }

 private:
  io_uring_sqe* NextSqe(int* result) {
    io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
    if (sqe == nullptr) {  // queue full: complete what is queued, then there is room
      Flush();
      sqe = io_uring_get_sqe(&ring_);
    }
    if (result != nullptr) *result = -ECANCELED;  // what the caller sees if the ring fails
    io_uring_sqe_set_data64(sqe, result == nullptr ? kNoResult : reinterpret_cast<uint64_t>(result));
    ++in_flight_;
    return sqe;
  }

  void Reap() {
    io_uring_cqe* cqe = nullptr;
    unsigned head = 0;
    unsigned seen = 0;
    io_uring_for_each_cqe(&ring_, head, cqe) {
      uint64_t data = io_uring_cqe_get_data64(cqe);
      if (data != kNoResult) *reinterpret_cast<int*>(data) = cqe->res;
      ++seen;
    }
    io_uring_cq_advance(&ring_, seen);
    in_flight_ -= seen;
  }

  // The ring itself failed (not one operation). Unreaped operations keep their -ECANCELED result;
  // the ring is re-created so that no queued entry is submitted later against stale buffers.
  void FailAllInFlight() {
    Reap();
    io_uring_queue_exit(&ring_);
    io_uring_params params = params_;
    if (io_uring_queue_init_params(params_.sq_entries, &ring_, &params) < 0) std::abort();
    in_flight_ = 0;
  }

  io_uring ring_;
  io_uring_params params_;
  unsigned in_flight_ = 0;
};

}  // namespace

std::unique_ptr<BatchIo> MakeUringBatchIo(unsigned queue_depth) {
  io_uring ring;
  io_uring_params requested{};
  requested.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_COOP_TASKRUN;
  io_uring_params params = requested;
  if (io_uring_queue_init_params(queue_depth, &ring, &params) < 0) {
    requested = io_uring_params{};
    params = requested;
    if (io_uring_queue_init_params(queue_depth, &ring, &params) < 0) return nullptr;
  }
  requested.sq_entries = queue_depth;
  return std::make_unique<UringBatchIo>(ring, requested);
}

}  // namespace fe::storage::tree
