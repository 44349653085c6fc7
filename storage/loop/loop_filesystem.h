// A filesystem in a sparse image file, attached to a loop device and mounted. It is the embedded
// default pool when the data root has no reflink (as LXD's loop-backed default pool), and the scratch
// filesystem of tests and benchmarks. Needs root (CAP_SYS_ADMIN) and /dev/loop-control.
#pragma once

#include <cstdint>
#include <string>

#include "base/status.h"

namespace fe::storage::loop {

enum class LoopFilesystemType { kXfs, kBtrfs, kExt4 };

std::string_view LoopFilesystemTypeName(LoopFilesystemType type);

struct LoopFilesystemOptions {
  LoopFilesystemType type = LoopFilesystemType::kXfs;
  std::string image_path;   // created sparse if missing; an existing image is mounted as it is
  uint64_t size_bytes = 0;  // size of a new image (minimum 512 MiB for XFS and btrfs)
  std::string mount_point;  // created if missing
  bool keep_image = false;  // keep the image file after teardown (a persistent pool)
};

// Owns the mount and the loop device: the destructor unmounts, detaches and (unless keep_image)
// deletes the image, on every path. Movable, not copyable.
class LoopFilesystem {
 public:
  // Formats (XFS with reflink=1; btrfs; ext4) when the image is new, attaches a free loop device
  // (autoclear), and mounts it at mount_point. Errors name the image, device and step.
  static Result<LoopFilesystem> Open(const LoopFilesystemOptions& options);

  // Whether this process can create loop filesystems; if not, `why` says what is missing.
  static bool Available(std::string* why);

  LoopFilesystem(LoopFilesystem&& other) noexcept;
  LoopFilesystem& operator=(LoopFilesystem&& other) noexcept;
  LoopFilesystem(const LoopFilesystem&) = delete;
  LoopFilesystem& operator=(const LoopFilesystem&) = delete;
  ~LoopFilesystem();

  // Unmounts, detaches and removes the image (unless kept), reporting the first error.
  Status Close();

  const std::string& mount_point() const { return mount_point_; }
  const std::string& device() const { return device_; }
  const std::string& image_path() const { return image_path_; }
  LoopFilesystemType type() const { return type_; }

 private:
  LoopFilesystem() = default;
  std::string image_path_;
  std::string mount_point_;
  std::string device_;
  LoopFilesystemType type_ = LoopFilesystemType::kXfs;
  bool keep_image_ = false;
  bool open_ = false;
};

}  // namespace fe::storage::loop
