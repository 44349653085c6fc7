// Loop devices under the loop-backed default pool: a sparse image file attached with autoclear, so
// the device detaches by itself once its last user lets go. The pool table holds the device open,
// so after the pool is loaded the attaching fd can be closed, and removing the pool detaches it.
#pragma once

#include <cstdint>
#include <string>

#include "base/status.h"
#include "base/unique_fd.h"

namespace fe::storage::dm_thin {

// An attached loop device; the fd keeps it attached until the pool holds it.
struct AttachedLoop {
  std::string device;  // /dev/loopN
  UniqueFd fd;
};

// Creates `image` sparse with `size_bytes` if it does not exist (an existing image keeps its size:
// it is an existing pool), then attaches it to a free loop device with autoclear.
Result<AttachedLoop> AttachImage(const std::string& image, uint64_t size_bytes);

// Size in bytes of the block device at `path`.
Result<uint64_t> BlockDeviceBytes(const std::string& path);

}  // namespace fe::storage::dm_thin
