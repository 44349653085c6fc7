#include "storage/dm_thin/dm_thin_loop.h"

#include <fcntl.h>
#include <linux/fs.h>
#include <linux/loop.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <thread>

namespace fe::storage::dm_thin {
namespace {

constexpr int kAttachAttempts = 32;  // another process may take the free device between the two ioctls

}  // namespace

Result<AttachedLoop> AttachImage(const std::string& image, uint64_t size_bytes) {
  UniqueFd image_fd(::open(image.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
  if (image_fd) {
    if (::ftruncate(image_fd.get(), static_cast<off_t>(size_bytes)) != 0) {
      Status status = Status::FromErrno(errno, "size pool image", image);
      ::unlink(image.c_str());
      return status;
    }
  } else if (errno == EEXIST) {
    image_fd.reset(::open(image.c_str(), O_RDWR | O_CLOEXEC));
  }
  if (!image_fd) return Status::FromErrno(errno, "open pool image", image);

  UniqueFd control(::open("/dev/loop-control", O_RDWR | O_CLOEXEC));
  if (!control) return Status::FromErrno(errno, "open", "/dev/loop-control");
  Status last;
  for (int attempt = 0; attempt < kAttachAttempts; ++attempt) {
    int number = ::ioctl(control.get(), LOOP_CTL_GET_FREE);
    if (number < 0) return Status::FromErrno(errno, "LOOP_CTL_GET_FREE on", "/dev/loop-control");
    AttachedLoop loop;
    loop.device = "/dev/loop" + std::to_string(number);
    loop.fd.reset(::open(loop.device.c_str(), O_RDWR | O_CLOEXEC));
    if (!loop.fd) {
      last = Status::FromErrno(errno, "open loop device", loop.device);
      if (errno != ENOENT) return last;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));  // the node may lag GET_FREE
      continue;
    }
    loop_config config;
    std::memset(&config, 0, sizeof config);
    config.fd = static_cast<uint32_t>(image_fd.get());
    config.info.lo_flags = LO_FLAGS_AUTOCLEAR;
    std::strncpy(reinterpret_cast<char*>(config.info.lo_file_name), image.c_str(), LO_NAME_SIZE - 1);
    if (::ioctl(loop.fd.get(), LOOP_CONFIGURE, &config) == 0) return loop;
    last = Status::FromErrno(errno, "LOOP_CONFIGURE " + loop.device + " with", image);
    if (errno != EBUSY) return last;
  }
  return last.Annotate("no free loop device after " + std::to_string(kAttachAttempts) + " attempts");
}

Result<uint64_t> BlockDeviceBytes(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return Status::FromErrno(errno, "open block device", path);
  uint64_t bytes = 0;
  if (::ioctl(fd.get(), BLKGETSIZE64, &bytes) != 0) return Status::FromErrno(errno, "BLKGETSIZE64 on", path);
  return bytes;
}

}  // namespace fe::storage::dm_thin
