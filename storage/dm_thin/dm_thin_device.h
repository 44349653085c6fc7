// Device-mapper calls through libdevmapper: the only code that includes libdevmapper.h.
//
// There is no udev on the hosts and guests this runs on, so udev synchronisation is turned off and
// libdevmapper makes the /dev/mapper/<name> nodes itself; every call that creates or resumes a device
// then checks the node and makes it (mknod) if the library did not. libdevmapper's log goes to the
// failing call's Status (when the call failed before reaching the kernel), never to stderr.
//
// Threads: every function may be called concurrently. libdevmapper keeps process-wide state (its
// stack of pending node operations), so calls into it are serialised by one process-wide lock.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "base/status.h"
#include "storage/dm_thin/dm_thin_table.h"

namespace fe::storage::dm_thin {

// Whether this kernel has a working device-mapper. A /dev/mapper/control node can exist while the
// kernel has none, so this asks the driver for its version. If not, `why` says what failed.
bool DeviceMapperAvailable(std::string* why);

struct DmDeviceInfo {
  bool exists = false;
  bool suspended = false;
  int32_t open_count = 0;
  uint32_t major = 0;
  uint32_t minor = 0;
  std::string DeviceNumber() const;  // "major:minor", what tables reference devices by
};

// Looks the device up; `exists` is false when there is no device of that name.
Result<DmDeviceInfo> DmInfo(const std::string& name);

// Creates device `name` with `table`, activates it and makes its /dev/mapper node.
Status DmCreate(const std::string& name, const std::vector<TableLine>& table);

// Deactivates and removes device `name` and its node. NotFound when absent, Busy when open.
Status DmRemove(const std::string& name);

// Sends `message` to sector 0 of device `name` (thin-pool messages). The Status keeps the ioctl's
// errno (sys_errno()), so callers can tell ENODATA ("no such thin id") from real failures.
Status DmMessage(const std::string& name, const std::string& message);

// The status line of each target of device `name` (TableLine::params holds the status params).
Result<std::vector<TableLine>> DmStatus(const std::string& name);

// Suspends device `name` (flushing and holding its I/O, freezing a filesystem mounted on it) and
// resumes it, making its node if need be. What KernelDeviceMapper() calls.
Status DmSuspend(const std::string& name);
Status DmResume(const std::string& name);

}  // namespace fe::storage::dm_thin
