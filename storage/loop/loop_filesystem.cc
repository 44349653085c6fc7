#include "storage/loop/loop_filesystem.h"

#include <fcntl.h>
#include <linux/loop.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <thread>
#include <utility>
#include <vector>

#include "base/process.h"
#include "base/unique_fd.h"

namespace fe::storage::loop {
namespace {

constexpr uint64_t kMinXfsBtrfsBytes = 512ull << 20;
constexpr int kAttachAttempts = 32;  // LOOP_CTL_GET_FREE / LOOP_CONFIGURE races with other attachers
constexpr int kUnmountAttempts = 20;

std::vector<std::string> MkfsCommand(LoopFilesystemType type, const std::string& image) {
  switch (type) {
    case LoopFilesystemType::kXfs: return {"mkfs.xfs", "-q", "-f", "-m", "reflink=1", image};
    case LoopFilesystemType::kBtrfs: return {"mkfs.btrfs", "-q", "-f", image};
    case LoopFilesystemType::kExt4: return {"mkfs.ext4", "-q", "-F", image};
  }
  return {};
}

// Creates `path` as a directory unless it already is one.
Status EnsureDirectory(const std::string& path) {
  if (::mkdir(path.c_str(), 0755) == 0) return Status::Ok();
  int err = errno;
  struct stat st;
  if (err == EEXIST && ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) return Status::Ok();
  return Status::FromErrno(err == EEXIST ? ENOTDIR : err, "creating mount point", path);
}

// Binds `image_fd` to a free loop device with autoclear. Returns the device's open fd, which must stay
// open until the filesystem is mounted (autoclear detaches on the last close).
Result<UniqueFd> AttachLoop(int image_fd, const std::string& image, std::string* device) {
  UniqueFd control(::open("/dev/loop-control", O_RDWR | O_CLOEXEC));
  if (!control) return Status::FromErrno(errno, "opening", "/dev/loop-control");

  Status last;
  for (int attempt = 0; attempt < kAttachAttempts; ++attempt) {
    int number = ::ioctl(control.get(), LOOP_CTL_GET_FREE);
    if (number < 0) return Status::FromErrno(errno, "LOOP_CTL_GET_FREE on", "/dev/loop-control");
    std::string path = "/dev/loop" + std::to_string(number);
    UniqueFd loop(::open(path.c_str(), O_RDWR | O_CLOEXEC));
    if (!loop) {
      last = Status::FromErrno(errno, "opening loop device", path);
      if (errno == ENOENT) {  // the device node may show up a moment after LOOP_CTL_GET_FREE
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
        continue;
      }
      return last;
    }

    loop_config config;
    std::memset(&config, 0, sizeof config);
    config.fd = static_cast<uint32_t>(image_fd);
    config.info.lo_flags = LO_FLAGS_AUTOCLEAR;
    std::strncpy(reinterpret_cast<char*>(config.info.lo_file_name), image.c_str(), LO_NAME_SIZE - 1);
    if (::ioctl(loop.get(), LOOP_CONFIGURE, &config) == 0) {
      *device = path;
      return loop;
    }
    int err = errno;
    if (err == EBUSY) {  // another process bound this device between GET_FREE and CONFIGURE
      last = Status::FromErrno(err, "LOOP_CONFIGURE " + path + " with", image);
      continue;
    }
    if (err != EINVAL && err != ENOTTY) {
      return Status::FromErrno(err, "LOOP_CONFIGURE " + path + " with", image);
    }
    // Kernels before 5.8 lack LOOP_CONFIGURE: bind, then set the flags.
    if (::ioctl(loop.get(), LOOP_SET_FD, image_fd) != 0) {
      err = errno;
      last = Status::FromErrno(err, "LOOP_SET_FD " + path + " with", image);
      if (err == EBUSY) continue;
      return last;
    }
    loop_info64 info;
    std::memset(&info, 0, sizeof info);
    info.lo_flags = LO_FLAGS_AUTOCLEAR;
    std::strncpy(reinterpret_cast<char*>(info.lo_file_name), image.c_str(), LO_NAME_SIZE - 1);
    if (::ioctl(loop.get(), LOOP_SET_STATUS64, &info) != 0) {
      err = errno;
      ::ioctl(loop.get(), LOOP_CLR_FD, 0);
      return Status::FromErrno(err, "LOOP_SET_STATUS64 " + path + " with", image);
    }
    *device = path;
    return loop;
  }
  return last.Annotate("no free loop device after " + std::to_string(kAttachAttempts) + " attempts");
}

// Detaches `device` if it is still bound to `image` (autoclear normally did it already). Checking the
// backing inode first keeps us from detaching a device another process has bound since.
void DetachIfStillOurs(const std::string& device, const std::string& image) {
  struct stat image_stat;
  if (::stat(image.c_str(), &image_stat) != 0) return;
  UniqueFd loop(::open(device.c_str(), O_RDONLY | O_CLOEXEC));
  if (!loop) return;
  loop_info64 info;
  if (::ioctl(loop.get(), LOOP_GET_STATUS64, &info) != 0) return;  // ENXIO: already detached
  if (info.lo_inode != image_stat.st_ino || info.lo_device != image_stat.st_dev) return;
  ::ioctl(loop.get(), LOOP_CLR_FD, 0);
}

}  // namespace

std::string_view LoopFilesystemTypeName(LoopFilesystemType type) {
  switch (type) {
    case LoopFilesystemType::kXfs: return "xfs";
    case LoopFilesystemType::kBtrfs: return "btrfs";
    case LoopFilesystemType::kExt4: return "ext4";
  }
  return "unknown";
}

bool LoopFilesystem::Available(std::string* why) {
  auto fail = [why](std::string reason) {
    if (why != nullptr) *why = std::move(reason);
    return false;
  };
  if (::geteuid() != 0)
    return fail("loop filesystems need root (CAP_SYS_ADMIN); running as uid " + std::to_string(::geteuid()));
  UniqueFd control(::open("/dev/loop-control", O_RDWR | O_CLOEXEC));
  if (!control) {
    return fail(Status::FromErrno(errno, "opening", "/dev/loop-control").message());
  }
  if (why != nullptr) why->clear();
  return true;
}

Result<LoopFilesystem> LoopFilesystem::Open(const LoopFilesystemOptions& options) {
  const std::string& image = options.image_path;
  const std::string context =
      "opening " + std::string(LoopFilesystemTypeName(options.type)) + " loop filesystem " + image;
  if (image.empty() || options.mount_point.empty()) {
    return Status::InvalidArgument(context + ": image_path and mount_point are required");
  }

  bool created = true;
  UniqueFd image_fd(::open(image.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
  if (!image_fd && errno == EEXIST) {
    created = false;
    image_fd.reset(::open(image.c_str(), O_RDWR | O_CLOEXEC));
  }
  if (!image_fd) return Status::FromErrno(errno, "opening image", image).Annotate(context);

  // A new image that fails to become a mounted filesystem is removed again.
  auto fail = [&](const Status& status) {
    if (created) ::unlink(image.c_str());
    return status.Annotate(context);
  };

  if (created) {
    uint64_t minimum = options.type == LoopFilesystemType::kExt4 ? 1 : kMinXfsBtrfsBytes;
    if (options.size_bytes < minimum) {
      return fail(Status::InvalidArgument("image size " + std::to_string(options.size_bytes) + " bytes is below the " +
                                          std::to_string(minimum) + " byte minimum"));
    }
    if (::ftruncate(image_fd.get(), static_cast<off_t>(options.size_bytes)) != 0) {
      return fail(Status::FromErrno(errno, "sizing image", image));
    }
    Status mkfs = RunProcessChecked(MkfsCommand(options.type, image));
    if (!mkfs.ok()) return fail(mkfs.Annotate("formatting"));
  }

  if (Status status = EnsureDirectory(options.mount_point); !status.ok()) return fail(status);

  std::string device;
  Result<UniqueFd> loop = AttachLoop(image_fd.get(), image, &device);
  if (!loop.ok()) return fail(loop.status());

  std::string fstype(LoopFilesystemTypeName(options.type));
  if (::mount(device.c_str(), options.mount_point.c_str(), fstype.c_str(), 0, nullptr) != 0) {
    Status status = Status::FromErrno(errno, "mounting " + device + " (" + fstype + ") at", options.mount_point);
    loop->reset();  // last close: autoclear detaches
    DetachIfStillOurs(device, image);
    return fail(status);
  }
  // The mount now holds the device; closing our fd leaves detaching to autoclear at unmount.

  LoopFilesystem fs;
  fs.image_path_ = image;
  fs.mount_point_ = options.mount_point;
  fs.device_ = std::move(device);
  fs.type_ = options.type;
  fs.keep_image_ = options.keep_image;
  fs.open_ = true;
  return fs;
}

LoopFilesystem::LoopFilesystem(LoopFilesystem&& other) noexcept
    : image_path_(std::move(other.image_path_)),
      mount_point_(std::move(other.mount_point_)),
      device_(std::move(other.device_)),
      type_(other.type_),
      keep_image_(other.keep_image_),
      open_(std::exchange(other.open_, false)) {}

LoopFilesystem& LoopFilesystem::operator=(LoopFilesystem&& other) noexcept {
  if (this != &other) {
    (void)Close();
    image_path_ = std::move(other.image_path_);
    mount_point_ = std::move(other.mount_point_);
    device_ = std::move(other.device_);
    type_ = other.type_;
    keep_image_ = other.keep_image_;
    open_ = std::exchange(other.open_, false);
  }
  return *this;
}

LoopFilesystem::~LoopFilesystem() { (void)Close(); }

Status LoopFilesystem::Close() {
  if (!open_) return Status::Ok();
  open_ = false;
  Status first;

  int err = 0;
  for (int attempt = 0; attempt < kUnmountAttempts; ++attempt) {
    if (::umount2(mount_point_.c_str(), 0) == 0) {
      err = 0;
      break;
    }
    err = errno;
    if (err != EBUSY) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  if (err != 0) {
    first = Status::FromErrno(err, "unmounting " + device_ + " from", mount_point_)
                .Annotate("closing loop filesystem " + image_path_);
    // Still busy: detach lazily so the device and image are released once the last user leaves.
    if (err == EBUSY) ::umount2(mount_point_.c_str(), MNT_DETACH);
  }

  DetachIfStillOurs(device_, image_path_);

  if (!keep_image_ && ::unlink(image_path_.c_str()) != 0 && errno != ENOENT && first.ok()) {
    first = Status::FromErrno(errno, "removing image", image_path_).Annotate("closing loop filesystem " + image_path_);
  }
  return first;
}

}  // namespace fe::storage::loop
