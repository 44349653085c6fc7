// The device-mapper calls the dm-thin backend makes, as an interface: the kernel's (libdevmapper,
// dm_thin_device.h) in production, a fault-injecting wrapper in tests (so every rollback path is
// proven without a test hook in the backend).
//
// Threads: implementations may be called concurrently.
#pragma once

#include <string>
#include <vector>

#include "base/status.h"
#include "storage/dm_thin/dm_thin_table.h"

namespace fe::storage::dm_thin {

struct DmDeviceInfo;

class DeviceMapper {
 public:
  virtual ~DeviceMapper() = default;
  // Looks the device up; `exists` is false when there is no device of that name.
  virtual Result<DmDeviceInfo> Info(const std::string& name) const = 0;
  // Creates device `name` with `table`, activates it and makes its /dev/mapper node.
  virtual Status Create(const std::string& name, const std::vector<TableLine>& table) const = 0;
  // Deactivates and removes device `name` and its node. NotFound when absent, Busy when open.
  virtual Status Remove(const std::string& name) const = 0;
  // A target message to sector 0 (thin-pool messages); the Status keeps the ioctl's errno.
  virtual Status Message(const std::string& name, const std::string& message) const = 0;
  // The status line of each target of the device.
  virtual Result<std::vector<TableLine>> TargetStatus(const std::string& name) const = 0;
  // Suspends the device: flushes and holds its I/O and freezes a filesystem mounted on it.
  virtual Status Suspend(const std::string& name) const = 0;
  virtual Status Resume(const std::string& name) const = 0;
};

// The kernel's device-mapper through libdevmapper (one object for the process).
const DeviceMapper& KernelDeviceMapper();

// A device suspended for as long as this owner lives (what a consistent thin snapshot of an active
// origin needs). The destructor resumes on every path; Resume() does it early and reports the
// outcome. Movable, not copyable.
class SuspendedDevice {
 public:
  static Result<SuspendedDevice> Suspend(const DeviceMapper& device_mapper, const std::string& name);

  SuspendedDevice(SuspendedDevice&& other) noexcept;
  SuspendedDevice& operator=(SuspendedDevice&& other) = delete;
  SuspendedDevice(const SuspendedDevice&) = delete;
  SuspendedDevice& operator=(const SuspendedDevice&) = delete;
  ~SuspendedDevice();

  Status Resume();

 private:
  SuspendedDevice(const DeviceMapper& device_mapper, std::string name)
      : device_mapper_(&device_mapper), name_(std::move(name)) {}
  const DeviceMapper* device_mapper_;
  std::string name_;  // empty once resumed or moved from
};

}  // namespace fe::storage::dm_thin
