// The thin-pool device of a dm-thin backend: activated from the configured block devices or from the
// loop-backed default images, or found already active (the daemon restarted while guests ran).
#pragma once

#include <string>

#include "base/status.h"
#include "storage/dm_thin/device_mapper.h"
#include "storage/dm_thin/dm_thin_config.h"
#include "storage/dm_thin/dm_thin_status.h"

namespace fe::storage::dm_thin {

class ThinPool {
 public:
  // Makes sure the pool `config.pool_name` is active. If a device of that name exists it must be a
  // thin-pool and is used as it is; otherwise the data and metadata devices (configured ones, or
  // loop devices over "<image_prefix>.data.img" / ".metadata.img", created sparse when missing) are
  // loaded into a new thin-pool table. A metadata device that starts with 4 KiB of zeroes becomes a
  // new, empty pool; any other is opened with the thin devices it already holds.
  static Result<ThinPool> Activate(const DmThinConfig& config, const std::string& image_prefix,
                                   const DeviceMapper& device_mapper);

  const std::string& name() const { return name_; }
  // "major:minor" of the pool device, for thin tables (works without a /dev/mapper node).
  const std::string& device_number() const { return device_number_; }

  Result<PoolStatus> ReadStatus() const;
  // Sends a thin-pool message (create_thin, create_snap, delete); keeps the ioctl's errno.
  Status Message(const std::string& message) const;
  // Removes the pool device (its thin devices must be gone); loop devices then detach by themselves.
  Status Deactivate() const;

 private:
  ThinPool(const DeviceMapper& device_mapper, std::string name, std::string device_number)
      : device_mapper_(&device_mapper), name_(std::move(name)), device_number_(std::move(device_number)) {}
  const DeviceMapper* device_mapper_;
  std::string name_;
  std::string device_number_;
};

}  // namespace fe::storage::dm_thin
