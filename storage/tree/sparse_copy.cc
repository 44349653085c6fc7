#include "storage/tree/sparse_copy.h"

#include <unistd.h>

#include <cerrno>
#include <vector>

namespace fe::storage::tree {
namespace {

bool CopyFileRangeRefused(int err) { return err == EXDEV || err == EOPNOTSUPP || err == EINVAL || err == ENOSYS; }

// The portable path for ranges copy_file_range refuses (different filesystem types, old kernels).
Status CopyRangeByBuffer(int source_fd, int target_fd, uint64_t offset, uint64_t length, std::string_view path) {
  std::vector<char> buffer(std::min<uint64_t>(length, 1 << 20));
  while (length > 0) {
    size_t chunk = std::min<uint64_t>(length, buffer.size());
    ssize_t got = ::pread(source_fd, buffer.data(), chunk, static_cast<off_t>(offset));
    if (got < 0) {
      if (errno == EINTR) continue;
      return Status::FromErrno(errno, "read", path);
    }
    if (got == 0) return Status::Ok();  // the source shrank under us; the size is set by the caller
    for (ssize_t written = 0; written < got;) {
      ssize_t n = ::pwrite(target_fd, buffer.data() + written, got - written, static_cast<off_t>(offset + written));
      if (n < 0) {
        if (errno == EINTR) continue;
        return Status::FromErrno(errno, "write", path);
      }
      written += n;
    }
    offset += got;
    length -= got;
  }
  return Status::Ok();
}

Status CopyRange(int source_fd, int target_fd, uint64_t offset, uint64_t length, std::string_view path) {
  loff_t in = static_cast<loff_t>(offset);
  loff_t out = in;
  while (length > 0) {
    ssize_t n = ::copy_file_range(source_fd, &in, target_fd, &out, length, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (CopyFileRangeRefused(errno)) {
        return CopyRangeByBuffer(source_fd, target_fd, in, length, path);
      }
      return Status::FromErrno(errno, "copy_file_range", path);
    }
    if (n == 0) break;  // source shrank
    length -= n;
  }
  return Status::Ok();
}

}  // namespace

Result<uint64_t> SparseCopy(int source_fd, int target_fd, uint64_t size, std::string_view path) {
  uint64_t copied = 0;
  uint64_t offset = 0;
  while (offset < size) {
    off_t data = ::lseek(source_fd, static_cast<off_t>(offset), SEEK_DATA);
    if (data < 0) {
      if (errno == ENXIO) break;  // only a hole remains
      if (errno != EINVAL) return Status::FromErrno(errno, "seek data in", path);
      data = static_cast<off_t>(offset);  // no SEEK_DATA support: treat the rest as data
    }
    off_t hole = ::lseek(source_fd, data, SEEK_HOLE);
    if (hole < 0) {
      if (errno != EINVAL) return Status::FromErrno(errno, "seek hole in", path);
      hole = static_cast<off_t>(size);
    }
    uint64_t end = std::min<uint64_t>(static_cast<uint64_t>(hole), size);
    if (end <= static_cast<uint64_t>(data)) break;
    FE_RETURN_IF_ERROR(CopyRange(source_fd, target_fd, data, end - data, path));
    copied += end - data;
    offset = end;
  }
  // A trailing hole allocates nothing: only the size is set.
  if (::ftruncate(target_fd, static_cast<off_t>(size)) != 0) {
    return Status::FromErrno(errno, "truncate", path);
  }
  return copied;
}

}  // namespace fe::storage::tree
