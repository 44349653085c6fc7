#include "storage/dm_thin/dm_thin_device.h"

#include "storage/dm_thin/device_mapper.h"

#include "base/log.h"

#include <libdevmapper.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <memory>
#include <mutex>
#include <utility>

namespace fe::storage::dm_thin {
namespace {

// The last error libdevmapper logged on this thread, for the Status of the failing call.
thread_local std::string last_library_error;

extern "C" void CaptureLibraryLog(int level, const char* /*file*/, int /*line*/, int /*dm_errno*/, const char* format,
                                  ...) {
  if ((level & 7) > 3) return;  // keep errors (3) and worse; drop warnings, notices, debug
  char buffer[512];
  va_list args;
  va_start(args, format);
  std::vsnprintf(buffer, sizeof buffer, format, args);
  va_end(args);
  if (!last_library_error.empty()) last_library_error += "; ";
  last_library_error += buffer;
}

void ConfigureLibrary() {
  static std::once_flag once;
  std::call_once(once, [] {
    dm_log_with_errno_init(CaptureLibraryLog);
    dm_udev_set_sync_support(0);  // no udev: the library manages /dev/mapper nodes itself
    dm_udev_set_checking(0);
  });
}

// libdevmapper is not thread-safe; recursive because Resume() and DmCreate() call DmInfo().
std::recursive_mutex& LibraryMutex() {
  static std::recursive_mutex mutex;
  return mutex;
}
using LibraryLock = std::lock_guard<std::recursive_mutex>;

struct TaskDeleter {
  void operator()(dm_task* task) const { dm_task_destroy(task); }
};
using Task = std::unique_ptr<dm_task, TaskDeleter>;

// A failed call with the ioctl's errno keeps it (callers branch on it); one that failed before any
// ioctl has only libdevmapper's text to offer.
Status TaskError(int err, std::string_view operation, const std::string& name) {
  const std::string device = "device-mapper device " + name;
  if (err != 0 || last_library_error.empty()) return Status::FromErrno(err == 0 ? EIO : err, operation, device);
  return Status::Io(std::string(operation) + " " + device + ": " + last_library_error);
}

Result<Task> NewTask(int type, const std::string& name, std::string_view operation) {
  ConfigureLibrary();
  last_library_error.clear();
  Task task(dm_task_create(type));
  if (!task) return TaskError(ENOMEM, operation, name);
  if (!name.empty() && !dm_task_set_name(task.get(), name.c_str())) return TaskError(EINVAL, operation, name);
  return task;
}

Status Run(dm_task* task, std::string_view operation, const std::string& name) {
  if (dm_task_run(task)) return Status::Ok();
  return TaskError(dm_task_get_errno(task), operation, name);
}

// Makes /dev/mapper/<name> a block node for the device unless it already is one.
Status EnsureNode(const std::string& name, const DmDeviceInfo& info) {
  dm_task_update_nodes();  // flushes the node operations libdevmapper stacked
  const std::string path = MapperPath(name);
  const dev_t device = makedev(info.major, info.minor);
  struct stat st;
  if (::stat(path.c_str(), &st) == 0 && S_ISBLK(st.st_mode) && st.st_rdev == device) return Status::Ok();
  if (::mkdir("/dev/mapper", 0755) != 0 && errno != EEXIST) return Status::FromErrno(errno, "mkdir", "/dev/mapper");
  ::unlink(path.c_str());  // a stale node from an earlier device of the same name
  if (::mknod(path.c_str(), S_IFBLK | 0600, device) != 0) return Status::FromErrno(errno, "mknod", path);
  return Status::Ok();
}

}  // namespace

std::string DmDeviceInfo::DeviceNumber() const { return std::to_string(major) + ":" + std::to_string(minor); }

bool DeviceMapperAvailable(std::string* why) {
  LibraryLock lock(LibraryMutex());
  ConfigureLibrary();
  last_library_error.clear();
  char version[64];
  if (dm_driver_version(version, sizeof version)) {
    if (why != nullptr) why->clear();
    return true;
  }
  if (why != nullptr) {
    *why = "the kernel's device-mapper driver does not answer (dm_driver_version failed";
    if (!last_library_error.empty()) *why += ": " + last_library_error;
    *why += "); is dm-mod loaded?";
  }
  return false;
}

Result<DmDeviceInfo> DmInfo(const std::string& name) {
  LibraryLock lock(LibraryMutex());
  Result<Task> task = NewTask(DM_DEVICE_INFO, name, "get info of");
  if (!task.ok()) return task.status();
  FE_RETURN_IF_ERROR(Run(task->get(), "get info of", name));
  dm_info raw{};
  if (!dm_task_get_info(task->get(), &raw)) return TaskError(EIO, "read info of", name);
  DmDeviceInfo info;
  info.exists = raw.exists != 0;
  info.suspended = raw.suspended != 0;
  info.open_count = raw.open_count;
  info.major = raw.major;
  info.minor = raw.minor;
  return info;
}

Status DmCreate(const std::string& name, const std::vector<TableLine>& table) {
  LibraryLock lock(LibraryMutex());
  Result<Task> task = NewTask(DM_DEVICE_CREATE, name, "create");
  if (!task.ok()) return task.status();
  for (const TableLine& line : table) {
    if (!dm_task_add_target(task->get(), line.start, line.sectors, line.target.c_str(), line.params.c_str())) {
      return TaskError(EINVAL, "add target '" + line.ToString() + "' to", name);
    }
  }
  Status created = Run(task->get(), "create", name);
  if (!created.ok()) {
    std::string table_text;
    for (const TableLine& line : table) table_text += (table_text.empty() ? "" : "; ") + line.ToString();
    return created.Annotate("table '" + table_text + "'");
  }
  Result<DmDeviceInfo> info = DmInfo(name);
  if (!info.ok()) return info.status();
  return EnsureNode(name, *info);
}

Status DmRemove(const std::string& name) {
  LibraryLock lock(LibraryMutex());
  Result<Task> task = NewTask(DM_DEVICE_REMOVE, name, "remove");
  if (!task.ok()) return task.status();
  dm_task_retry_remove(task->get());  // a transient opener (blkid, say) should not fail removal
  FE_RETURN_IF_ERROR(Run(task->get(), "remove", name));
  dm_task_update_nodes();
  ::unlink(MapperPath(name).c_str());  // in case the library left it
  return Status::Ok();
}

Status DmMessage(const std::string& name, const std::string& message) {
  LibraryLock lock(LibraryMutex());
  const std::string operation = "send '" + message + "' to";
  Result<Task> task = NewTask(DM_DEVICE_TARGET_MSG, name, operation);
  if (!task.ok()) return task.status();
  if (!dm_task_set_sector(task->get(), 0) || !dm_task_set_message(task->get(), message.c_str())) {
    return TaskError(EINVAL, operation, name);
  }
  return Run(task->get(), operation, name);
}

Result<std::vector<TableLine>> DmStatus(const std::string& name) {
  LibraryLock lock(LibraryMutex());
  Result<Task> task = NewTask(DM_DEVICE_STATUS, name, "get status of");
  if (!task.ok()) return task.status();
  FE_RETURN_IF_ERROR(Run(task->get(), "get status of", name));
  std::vector<TableLine> lines;
  void* next = nullptr;
  do {
    uint64_t start = 0, length = 0;
    char* target = nullptr;
    char* params = nullptr;
    next = dm_get_next_target(task->get(), next, &start, &length, &target, &params);
    if (target == nullptr) break;  // a device without a table
    lines.push_back(TableLine{start, length, target, params == nullptr ? "" : params});
  } while (next != nullptr);
  return lines;
}

Status DmSuspend(const std::string& name) {
  LibraryLock lock(LibraryMutex());
  Result<Task> task = NewTask(DM_DEVICE_SUSPEND, name, "suspend");
  if (!task.ok()) return task.status();
  return Run(task->get(), "suspend", name);
}

Status DmResume(const std::string& name) {
  LibraryLock lock(LibraryMutex());
  Result<Task> task = NewTask(DM_DEVICE_RESUME, name, "resume");
  if (!task.ok()) return task.status();
  FE_RETURN_IF_ERROR(Run(task->get(), "resume", name));
  Result<DmDeviceInfo> info = DmInfo(name);
  if (!info.ok()) return info.status();
  return EnsureNode(name, *info);
}

namespace {

class LibDevmapper final : public DeviceMapper {
 public:
  Result<DmDeviceInfo> Info(const std::string& name) const override { return DmInfo(name); }
  Status Create(const std::string& name, const std::vector<TableLine>& table) const override {
    return DmCreate(name, table);
  }
  Status Remove(const std::string& name) const override { return DmRemove(name); }
  Status Message(const std::string& name, const std::string& message) const override {
    return DmMessage(name, message);
  }
  Result<std::vector<TableLine>> TargetStatus(const std::string& name) const override { return DmStatus(name); }
  Status Suspend(const std::string& name) const override { return DmSuspend(name); }
  Status Resume(const std::string& name) const override { return DmResume(name); }
};

}  // namespace

const DeviceMapper& KernelDeviceMapper() {
  static const LibDevmapper kernel;
  return kernel;
}

Result<SuspendedDevice> SuspendedDevice::Suspend(const DeviceMapper& device_mapper, const std::string& name) {
  FE_RETURN_IF_ERROR(device_mapper.Suspend(name));
  return SuspendedDevice(device_mapper, name);
}

SuspendedDevice::SuspendedDevice(SuspendedDevice&& other) noexcept
    : device_mapper_(other.device_mapper_), name_(std::exchange(other.name_, {})) {}

SuspendedDevice::~SuspendedDevice() {
  Status resumed = Resume();
  if (!resumed.ok()) LogError(resumed.message());
}

Status SuspendedDevice::Resume() {
  if (name_.empty()) return Status::Ok();
  return device_mapper_->Resume(std::exchange(name_, {}));
}

}  // namespace fe::storage::dm_thin
