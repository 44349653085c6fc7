#include "hypervisor/firecracker/snapshot_devices.h"

#include "hypervisor/firecracker/instance_files.h"
#include "base/confined_dir.h"

namespace fe::hypervisor::firecracker {
namespace {

constexpr int kFormatVersion = 1;

Result<bool> BoolMember(const Json& object, const char* key, std::string_view file, const std::string& field) {
  auto it = object.find(key);
  if (it == object.end() || it->is_null()) return false;
  if (!it->is_boolean()) return FieldError(file, FieldName(field, key), "expected a boolean, found " + it->dump());
  return it->get<bool>();
}

// Calls parse(element, "key[i]") for each element of the array document[key] (absent or null: none).
template <typename Parse>
Status ForEachElement(const Json& document, const char* key, std::string_view file, Parse parse) {
  auto array = document.find(key);
  if (array == document.end() || array->is_null()) return Status::Ok();
  if (!array->is_array()) return FieldError(file, key, "expected an array, found " + array->dump());
  for (size_t i = 0; i < array->size(); ++i) {
    const std::string field = std::string(key) + "[" + std::to_string(i) + "]";
    if (!(*array)[i].is_object()) return FieldError(file, field, "expected an object, found " + (*array)[i].dump());
    FE_RETURN_IF_ERROR(parse((*array)[i], field));
  }
  return Status::Ok();
}

}  // namespace

Result<SnapshotDevices> ParseSnapshotDevices(const Json& document, std::string_view file) {
  if (!document.is_object()) return FieldError(file, "(root)", "expected an object");
  if (auto version = document.find("version"); version != document.end() && *version != kFormatVersion) {
    return FieldError(
        file, "version",
        "unknown version " + version->dump() + " (this engine reads " + std::to_string(kFormatVersion) + ")");
  }
  SnapshotDevices devices;
  FE_RETURN_IF_ERROR(ForEachElement(document, "drives", file, [&](const Json& entry, const std::string& field) {
    DriveDevice drive;
    Result<std::string> id = StringMember(entry, "drive_id", file, field, true);
    Result<std::string> path = StringMember(entry, "path_on_host", file, field, false);
    Result<std::string> socket = StringMember(entry, "socket", file, field, false);
    Result<bool> read_only = BoolMember(entry, "is_read_only", file, field);
    for (const Status* status : {&id.status(), &path.status(), &socket.status(), &read_only.status()}) {
      if (!status->ok()) return *status;
    }
    devices.drives.push_back({*id, *path, *socket, *read_only});
    return Status::Ok();
  }));
  FE_RETURN_IF_ERROR(ForEachElement(document, "pmem", file, [&](const Json& entry, const std::string& field) {
    Result<std::string> id = StringMember(entry, "id", file, field, true);
    Result<std::string> path = StringMember(entry, "path_on_host", file, field, true);
    Result<bool> read_only = BoolMember(entry, "read_only", file, field);
    for (const Status* status : {&id.status(), &path.status(), &read_only.status()}) {
      if (!status->ok()) return *status;
    }
    devices.pmem.push_back({*id, *path, *read_only});
    return Status::Ok();
  }));
  FE_RETURN_IF_ERROR(
      ForEachElement(document, "network-interfaces", file, [&](const Json& entry, const std::string& field) {
        Result<std::string> id = StringMember(entry, "iface_id", file, field, true);
        Result<std::string> tap = StringMember(entry, "host_dev_name", file, field, true);
        Result<std::string> mac = StringMember(entry, "guest_mac", file, field, false);
        for (const Status* status : {&id.status(), &tap.status(), &mac.status()}) {
          if (!status->ok()) return *status;
        }
        devices.network_interfaces.push_back({*id, *tap, *mac});
        return Status::Ok();
      }));
  Result<const Json*> vsock = Member(document, "vsock", file, "(root)");
  if (!vsock.ok()) return vsock.status();
  if (*vsock != nullptr) {
    Result<std::string> uds_path = StringMember(**vsock, "uds_path", file, "vsock", true);
    if (!uds_path.ok()) return uds_path.status();
    auto cid = (*vsock)->find("guest_cid");
    if (cid == (*vsock)->end() || !cid->is_number_unsigned() || cid->get<uint64_t>() > 0xffffffffu) {
      return FieldError(file, "vsock.guest_cid", "expected a 32-bit unsigned number");
    }
    devices.vsock = VsockDevice{*uds_path, static_cast<uint32_t>(cid->get<uint64_t>())};
  }
  Result<const Json*> alias = Member(document, "source_alias", file, "(root)");
  if (!alias.ok()) return alias.status();
  if (*alias != nullptr) {
    Result<std::string> from = StringMember(**alias, "from", file, "source_alias", true);
    Result<std::string> to = StringMember(**alias, "to", file, "source_alias", true);
    if (!from.ok()) return from.status();
    if (!to.ok()) return to.status();
    if (from->empty() || from->front() != '/' || to->empty() || to->front() != '/') {
      return FieldError(file, "source_alias", "from and to must be absolute directories");
    }
    devices.source_alias = PathAlias{*from, *to};
  }
  return devices;
}

std::string EncodeSnapshotDevices(const SnapshotDevices& devices, Json base) {
  if (!base.is_object()) base = Json::object();
  base["version"] = kFormatVersion;
  Json drives = Json::array();
  for (const DriveDevice& drive : devices.drives) {
    Json entry = {{"drive_id", drive.drive_id}, {"is_read_only", drive.read_only}};
    if (!drive.path_on_host.empty()) entry["path_on_host"] = drive.path_on_host;
    if (!drive.socket.empty()) entry["socket"] = drive.socket;
    drives.push_back(std::move(entry));
  }
  base["drives"] = std::move(drives);
  Json pmem = Json::array();
  for (const PmemDevice& device : devices.pmem) {
    pmem.push_back({{"id", device.id}, {"path_on_host", device.path_on_host}, {"read_only", device.read_only}});
  }
  base["pmem"] = std::move(pmem);
  Json nics = Json::array();
  for (const NetDevice& nic : devices.network_interfaces) {
    Json entry = {{"iface_id", nic.iface_id}, {"host_dev_name", nic.host_dev_name}};
    if (!nic.guest_mac.empty()) entry["guest_mac"] = nic.guest_mac;
    nics.push_back(std::move(entry));
  }
  base["network-interfaces"] = std::move(nics);
  base["vsock"] = devices.vsock ? Json{{"uds_path", devices.vsock->uds_path}, {"guest_cid", devices.vsock->guest_cid}}
                                : Json(nullptr);
  if (devices.source_alias) {
    base["source_alias"] = {{"from", devices.source_alias->from}, {"to", devices.source_alias->to}};
  } else {
    base.erase("source_alias");
  }
  return base.dump(2) + "\n";
}

Result<SnapshotDevices> ReadSnapshotDevices(const std::string& snapshot_dir) {
  const std::string file = snapshot_dir + "/" + std::string(kSnapshotDevicesName);
  Result<std::string> text = ReadFileBeneath(snapshot_dir, kSnapshotDevicesName);
  if (!text.ok()) return text.status();
  Result<Json> document = ParseObject(*text, file);
  if (!document.ok()) return document.status();
  return ParseSnapshotDevices(*document, file);
}

}  // namespace fe::hypervisor::firecracker
