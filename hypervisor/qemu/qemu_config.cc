#include "hypervisor/qemu/qemu_config.h"

#include <sys/un.h>

#include <cctype>
#include <limits>
#include <map>
#include <set>

#include "base/confined_dir.h"

namespace fe::hypervisor::qemu {
namespace {

// Reads the members of one JSON object, naming "<origin>: field '<path>'" in every error, and
// collects the members it was not asked about as extras.
class ObjectReader {
 public:
  ObjectReader(const Json& object, std::string_view origin, std::string prefix)
      : object_(object), origin_(origin), prefix_(std::move(prefix)) {}

  Status Error(std::string_view key, std::string_view what) const {
    return Status::InvalidArgument(std::string(origin_) + ": field '" + Field(key) + "': " + std::string(what));
  }
  std::string Field(std::string_view key) const { return prefix_ + std::string(key); }

  // Absent keys leave `out` as it is; `required` makes absence an error.
  Status String(const char* key, std::string& out, bool required = false) {
    const Json* value = Find(key);
    if (value == nullptr) return required ? Error(key, "is required") : Status::Ok();
    if (!value->is_string()) return Error(key, "expected a string");
    out = value->get<std::string>();
    if (required && out.empty()) return Error(key, "must not be empty");
    return Status::Ok();
  }
  Status Path(const char* key, std::string& out, bool required = false) {
    FE_RETURN_IF_ERROR(String(key, out, required));
    if (!out.empty() && out[0] != '/') return Error(key, "expected an absolute path, got \"" + out + "\"");
    return Status::Ok();
  }
  Status Bool(const char* key, bool& out) {
    const Json* value = Find(key);
    if (value == nullptr) return Status::Ok();
    if (!value->is_boolean()) return Error(key, "expected true or false");
    out = value->get<bool>();
    return Status::Ok();
  }
  template <typename Int>
  Status Integer(const char* key, Int& out, Int minimum, bool required = false) {
    const Json* value = Find(key);
    if (value == nullptr) return required ? Error(key, "is required") : Status::Ok();
    if (!value->is_number_integer()) return Error(key, "expected an integer");
    if (value->is_number_unsigned()) {
      uint64_t v = value->get<uint64_t>();
      if (v > static_cast<uint64_t>(std::numeric_limits<Int>::max())) return Error(key, "is too large");
      out = static_cast<Int>(v);
    } else {
      int64_t v = value->get<int64_t>();
      if (v < static_cast<int64_t>(minimum)) return Error(key, "must be at least " + std::to_string(minimum));
      if (static_cast<uint64_t>(v) > static_cast<uint64_t>(std::numeric_limits<Int>::max())) {
        return Error(key, "is too large");
      }
      out = static_cast<Int>(v);
    }
    if (out < minimum) return Error(key, "must be at least " + std::to_string(minimum));
    return Status::Ok();
  }
  // Calls `each(element, "<prefix><key>[i].")` for every element of an array of objects.
  template <typename Each>
  Status Objects(const char* key, Each each) {
    const Json* value = Find(key);
    if (value == nullptr) return Status::Ok();
    if (!value->is_array()) return Error(key, "expected an array");
    for (size_t i = 0; i < value->size(); ++i) {
      const std::string field = Field(key) + "[" + std::to_string(i) + "]";
      if (!(*value)[i].is_object()) {
        return Status::InvalidArgument(std::string(origin_) + ": field '" + field + "': expected an object");
      }
      FE_RETURN_IF_ERROR(each((*value)[i], field + "."));
    }
    return Status::Ok();
  }
  const Json* Object(const char* key, Status& status) {
    const Json* value = Find(key);
    if (value != nullptr && !value->is_object()) {
      status = Error(key, "expected an object");
      return nullptr;
    }
    return value;
  }

  Json Extra() const {
    Json extra = Json::object();
    for (auto it = object_.begin(); it != object_.end(); ++it) {
      if (!seen_.count(it.key())) extra[it.key()] = it.value();
    }
    return extra;
  }

 private:
  const Json* Find(const char* key) {
    seen_.insert(key);
    auto it = object_.find(key);
    return it == object_.end() ? nullptr : &*it;
  }

  const Json& object_;
  std::string_view origin_;
  std::string prefix_;
  std::set<std::string> seen_;
};

bool IsQemuId(std::string_view id) {
  if (id.empty() || !std::isalpha(static_cast<unsigned char>(id[0]))) return false;
  for (char c : id) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '.' && c != '_') return false;
  }
  return true;
}

bool IsMac(std::string_view mac) {
  if (mac.size() != 17) return false;
  for (size_t i = 0; i < mac.size(); ++i) {
    const char c = mac[i];
    if (i % 3 == 2 ? c != ':' : !(std::isdigit(static_cast<unsigned char>(c)) || (c >= 'a' && c <= 'f'))) {
      return false;
    }
  }
  return true;
}

bool IsGuid(std::string_view guid) {
  if (guid == "auto") return true;
  if (guid.size() != 36) return false;
  for (size_t i = 0; i < guid.size(); ++i) {
    const bool dash = i == 8 || i == 13 || i == 18 || i == 23;
    if (dash ? guid[i] != '-' : !std::isxdigit(static_cast<unsigned char>(guid[i]))) return false;
  }
  return true;
}

Status CheckId(ObjectReader& reader, const std::string& id) {
  if (!IsQemuId(id)) {
    return reader.Error("id", "\"" + id + "\" is not a QEMU id (a letter, then letters, digits, '-', '.', '_')");
  }
  return Status::Ok();
}

Result<Drive> ParseDrive(const Json& object, std::string_view origin, const std::string& prefix) {
  ObjectReader reader(object, origin, prefix);
  Drive drive;
  FE_RETURN_IF_ERROR(reader.String("id", drive.id, true));
  FE_RETURN_IF_ERROR(CheckId(reader, drive.id));
  FE_RETURN_IF_ERROR(reader.Path("file", drive.file, true));
  FE_RETURN_IF_ERROR(reader.String("format", drive.format));
  if (drive.format != "raw" && drive.format != "qcow2") {
    return reader.Error("format", "expected \"raw\" or \"qcow2\", got \"" + drive.format + "\"");
  }
  FE_RETURN_IF_ERROR(reader.String("device", drive.device, false));
  if (drive.device.empty()) return reader.Error("device", "must not be empty");
  FE_RETURN_IF_ERROR(reader.Bool("read_only", drive.read_only));
  drive.extra = reader.Extra();
  return drive;
}

Result<Nic> ParseNic(const Json& object, std::string_view origin, const std::string& prefix) {
  ObjectReader reader(object, origin, prefix);
  Nic nic;
  FE_RETURN_IF_ERROR(reader.String("id", nic.id, true));
  FE_RETURN_IF_ERROR(CheckId(reader, nic.id));
  FE_RETURN_IF_ERROR(reader.String("ifname", nic.ifname, true));
  if (nic.ifname.size() > 15) return reader.Error("ifname", "\"" + nic.ifname + "\" is longer than 15 bytes");
  FE_RETURN_IF_ERROR(reader.String("mac", nic.mac, true));
  if (!IsMac(nic.mac)) return reader.Error("mac", "\"" + nic.mac + "\" is not a lower-case xx:xx:xx:xx:xx:xx MAC");
  FE_RETURN_IF_ERROR(reader.String("device", nic.device));
  if (nic.device.empty()) return reader.Error("device", "must not be empty");
  nic.extra = reader.Extra();
  return nic;
}

Result<Chardev> ParseChardev(const Json& object, std::string_view origin, const std::string& prefix) {
  ObjectReader reader(object, origin, prefix);
  Chardev chardev;
  FE_RETURN_IF_ERROR(reader.String("id", chardev.id, true));
  FE_RETURN_IF_ERROR(CheckId(reader, chardev.id));
  FE_RETURN_IF_ERROR(reader.String("backend", chardev.backend, true));
  if (chardev.backend != "socket" && chardev.backend != "file") {
    return reader.Error("backend", "expected \"socket\" or \"file\", got \"" + chardev.backend + "\"");
  }
  FE_RETURN_IF_ERROR(reader.Path("path", chardev.path, true));
  FE_RETURN_IF_ERROR(reader.String("virtio_port", chardev.virtio_port));
  chardev.extra = reader.Extra();
  return chardev;
}

void PutIfSet(Json& json, const char* key, const std::string& value) {
  if (!value.empty()) json[key] = value;
}

void MergeExtra(Json& json, const Json& extra) {
  for (auto it = extra.begin(); it != extra.end(); ++it) {
    if (!json.contains(it.key())) json[it.key()] = it.value();
  }
}

}  // namespace

Result<Config> ParseConfig(std::string_view json_text, std::string_view origin) {
  Json root = Json::parse(json_text, nullptr, /*allow_exceptions=*/false);
  if (root.is_discarded()) return Status::InvalidArgument(std::string(origin) + ": not valid JSON");
  if (!root.is_object()) return Status::InvalidArgument(std::string(origin) + ": expected a JSON object");

  ObjectReader reader(root, origin, "");
  Config config;
  FE_RETURN_IF_ERROR(reader.String("binary", config.binary));
  if (config.binary.empty()) return reader.Error("binary", "must not be empty");
  FE_RETURN_IF_ERROR(reader.String("machine", config.machine));
  if (config.machine.empty()) return reader.Error("machine", "must not be empty");
  FE_RETURN_IF_ERROR(reader.String("accel", config.accel));
  if (config.accel.empty()) return reader.Error("accel", "must not be empty");
  FE_RETURN_IF_ERROR(reader.String("cpu", config.cpu));
  FE_RETURN_IF_ERROR(reader.Integer("cpus", config.cpus, 1));
  FE_RETURN_IF_ERROR(reader.Integer<uint64_t>("memory_mib", config.memory_mib, 1));
  FE_RETURN_IF_ERROR(reader.Path("memory_file", config.memory_file));
  FE_RETURN_IF_ERROR(reader.Path("kernel", config.kernel));
  FE_RETURN_IF_ERROR(reader.Path("initrd", config.initrd));
  FE_RETURN_IF_ERROR(reader.String("append", config.append));
  FE_RETURN_IF_ERROR(reader.Objects("drives", [&](const Json& object, const std::string& prefix) {
    Result<Drive> drive = ParseDrive(object, origin, prefix);
    if (!drive.ok()) return drive.status();
    config.drives.push_back(std::move(*drive));
    return Status::Ok();
  }));
  FE_RETURN_IF_ERROR(reader.Objects("nics", [&](const Json& object, const std::string& prefix) {
    Result<Nic> nic = ParseNic(object, origin, prefix);
    if (!nic.ok()) return nic.status();
    config.nics.push_back(std::move(*nic));
    return Status::Ok();
  }));
  FE_RETURN_IF_ERROR(reader.Objects("chardevs", [&](const Json& object, const std::string& prefix) {
    Result<Chardev> chardev = ParseChardev(object, origin, prefix);
    if (!chardev.ok()) return chardev.status();
    config.chardevs.push_back(std::move(*chardev));
    return Status::Ok();
  }));
  FE_RETURN_IF_ERROR(reader.String("serial", config.serial));
  FE_RETURN_IF_ERROR(reader.Path("qmp_socket", config.qmp_socket, true));
  Status object_status;
  if (const Json* vsock = reader.Object("vsock", object_status); vsock != nullptr) {
    ObjectReader vsock_reader(*vsock, origin, "vsock.");
    Vsock parsed;
    FE_RETURN_IF_ERROR(vsock_reader.String("id", parsed.id));
    FE_RETURN_IF_ERROR(CheckId(vsock_reader, parsed.id));
    FE_RETURN_IF_ERROR(vsock_reader.Integer<uint32_t>("guest_cid", parsed.guest_cid, 3, true));
    parsed.extra = vsock_reader.Extra();
    config.vsock = std::move(parsed);
  }
  FE_RETURN_IF_ERROR(object_status);
  FE_RETURN_IF_ERROR(reader.String("vmgenid", config.vmgenid));
  if (!config.vmgenid.empty() && !IsGuid(config.vmgenid)) {
    return reader.Error("vmgenid", "\"" + config.vmgenid + "\" is not a GUID (8-4-4-4-12 hex digits) or \"auto\"");
  }
  config.extra = reader.Extra();
  FE_RETURN_IF_ERROR(ValidateConfig(config, origin));
  return config;
}

std::string SerializeConfig(const Config& config) {
  Json root = Json::object();
  root["binary"] = config.binary;
  root["machine"] = config.machine;
  root["accel"] = config.accel;
  PutIfSet(root, "cpu", config.cpu);
  root["cpus"] = config.cpus;
  root["memory_mib"] = config.memory_mib;
  PutIfSet(root, "memory_file", config.memory_file);
  PutIfSet(root, "kernel", config.kernel);
  PutIfSet(root, "initrd", config.initrd);
  PutIfSet(root, "append", config.append);
  Json drives = Json::array();
  for (const Drive& drive : config.drives) {
    Json json = {{"id", drive.id},
                 {"file", drive.file},
                 {"format", drive.format},
                 {"device", drive.device},
                 {"read_only", drive.read_only}};
    MergeExtra(json, drive.extra);
    drives.push_back(std::move(json));
  }
  root["drives"] = std::move(drives);
  Json nics = Json::array();
  for (const Nic& nic : config.nics) {
    Json json = {{"id", nic.id}, {"ifname", nic.ifname}, {"mac", nic.mac}, {"device", nic.device}};
    MergeExtra(json, nic.extra);
    nics.push_back(std::move(json));
  }
  root["nics"] = std::move(nics);
  Json chardevs = Json::array();
  for (const Chardev& chardev : config.chardevs) {
    Json json = {{"id", chardev.id}, {"backend", chardev.backend}, {"path", chardev.path}};
    PutIfSet(json, "virtio_port", chardev.virtio_port);
    MergeExtra(json, chardev.extra);
    chardevs.push_back(std::move(json));
  }
  root["chardevs"] = std::move(chardevs);
  PutIfSet(root, "serial", config.serial);
  root["qmp_socket"] = config.qmp_socket;
  if (config.vsock) {
    Json json = {{"id", config.vsock->id}, {"guest_cid", config.vsock->guest_cid}};
    MergeExtra(json, config.vsock->extra);
    root["vsock"] = std::move(json);
  }
  PutIfSet(root, "vmgenid", config.vmgenid);
  MergeExtra(root, config.extra);
  return root.dump(2) + "\n";
}

Status ValidateConfig(const Config& config, std::string_view origin) {
  auto error = [&](const std::string& field, const std::string& what) {
    return Status::InvalidArgument(std::string(origin) + ": field '" + field + "': " + what);
  };
  // The QEMU device ids the command line will use (qemu_argv.h): "<id>-dev" for drives and NICs,
  // "<id>-port" for virtio-serial ports, the vsock's id, and the reserved "fe-..." ones.
  std::map<std::string, std::string> devices = {{"fe-vmgenid", "(reserved)"}, {"fe-virtio-serial", "(reserved)"}};
  auto add_device = [&](const std::string& device_id, const std::string& field) {
    auto [it, added] = devices.emplace(device_id, field);
    if (added) return Status::Ok();
    return error(field, "makes QEMU device id \"" + device_id + "\", which " + it->second + " makes too");
  };
  for (size_t i = 0; i < config.drives.size(); ++i) {
    FE_RETURN_IF_ERROR(add_device(config.drives[i].id + "-dev", "drives[" + std::to_string(i) + "].id"));
  }
  for (size_t i = 0; i < config.nics.size(); ++i) {
    FE_RETURN_IF_ERROR(add_device(config.nics[i].id + "-dev", "nics[" + std::to_string(i) + "].id"));
  }
  if (config.vsock) FE_RETURN_IF_ERROR(add_device(config.vsock->id, "vsock.id"));

  std::set<std::string> chardev_ids = {"fe-qmp"};
  std::set<std::string> port_names;
  bool serial_found = config.serial.empty();
  for (size_t i = 0; i < config.chardevs.size(); ++i) {
    const Chardev& chardev = config.chardevs[i];
    const std::string field = "chardevs[" + std::to_string(i) + "]";
    if (!chardev_ids.insert(chardev.id).second) return error(field + ".id", "\"" + chardev.id + "\" is used twice");
    if (chardev.backend == "socket" && chardev.path.size() >= sizeof(sockaddr_un::sun_path)) {
      return error(field + ".path",
                   "socket path is longer than " + std::to_string(sizeof(sockaddr_un::sun_path) - 1) + " bytes");
    }
    if (!chardev.virtio_port.empty()) {
      FE_RETURN_IF_ERROR(add_device(chardev.id + "-port", field + ".id"));
      if (!port_names.insert(chardev.virtio_port).second) {
        return error(field + ".virtio_port", "\"" + chardev.virtio_port + "\" is used twice");
      }
      if (chardev.id == config.serial) {
        return error(field + ".virtio_port", "chardev \"" + chardev.id + "\" is already the serial port");
      }
    }
    serial_found = serial_found || chardev.id == config.serial;
  }
  if (!serial_found) return error("serial", "no chardev has id \"" + config.serial + "\"");
  if (config.qmp_socket.size() >= sizeof(sockaddr_un::sun_path)) {
    return error("qmp_socket",
                 "socket path is longer than " + std::to_string(sizeof(sockaddr_un::sun_path) - 1) + " bytes");
  }
  return Status::Ok();
}

Result<Config> ReadConfig(const std::string& instance_dir) {
  const std::string path = instance_dir + "/" + kConfigFile;
  Result<std::string> text = ReadFileBeneath(instance_dir, kConfigFile);
  if (!text.ok()) return text.status();
  return ParseConfig(*text, path);
}

Status WriteConfig(const std::string& instance_dir, const Config& config) {
  const std::string path = instance_dir + "/" + kConfigFile;
  FE_RETURN_IF_ERROR(ValidateConfig(config, path));
  return ReplaceFileBeneath(instance_dir, kConfigFile, SerializeConfig(config));
}

}  // namespace fe::hypervisor::qemu
