#include "hypervisor/cloud_hypervisor/boot_arguments.h"

#include <array>
#include <cctype>
#include <span>

namespace fe::hypervisor::cloud_hypervisor {
namespace {

struct Key {
  std::string_view json;
  std::string_view cli;
};

constexpr std::array<Key, 4> kCpuKeys = {
    {{"boot_vcpus", "boot"}, {"max_vcpus", "max"}, {"kvm_hyperv", "kvm_hyperv"}, {"max_phys_bits", "max_phys_bits"}}};
constexpr std::array<Key, 7> kMemoryKeys = {{{"size", "size"},
                                             {"mergeable", "mergeable"},
                                             {"shared", "shared"},
                                             {"hugepages", "hugepages"},
                                             {"hugepage_size", "hugepage_size"},
                                             {"hotplug_size", "hotplug_size"},
                                             {"prefault", "prefault"}}};
constexpr std::array<Key, 11> kDiskKeys = {{{"path", "path"},
                                            {"readonly", "readonly"},
                                            {"direct", "direct"},
                                            {"iommu", "iommu"},
                                            {"num_queues", "num_queues"},
                                            {"queue_size", "queue_size"},
                                            {"vhost_user", "vhost_user"},
                                            {"vhost_socket", "socket"},
                                            {"id", "id"},
                                            {"serial", "serial"},
                                            {"pci_segment", "pci_segment"}}};
constexpr std::array<Key, 14> kNetKeys = {{{"tap", "tap"},
                                           {"ip", "ip"},
                                           {"mask", "mask"},
                                           {"mac", "mac"},
                                           {"host_mac", "host_mac"},
                                           {"mtu", "mtu"},
                                           {"iommu", "iommu"},
                                           {"num_queues", "num_queues"},
                                           {"queue_size", "queue_size"},
                                           {"vhost_user", "vhost_user"},
                                           {"vhost_socket", "socket"},
                                           {"vhost_mode", "vhost_mode"},
                                           {"id", "id"},
                                           {"pci_segment", "pci_segment"}}};
constexpr std::array<Key, 2> kRngKeys = {{{"src", "src"}, {"iommu", "iommu"}}};
constexpr std::array<Key, 6> kFsKeys = {{{"tag", "tag"},
                                         {"socket", "socket"},
                                         {"num_queues", "num_queues"},
                                         {"queue_size", "queue_size"},
                                         {"id", "id"},
                                         {"pci_segment", "pci_segment"}}};
constexpr std::array<Key, 6> kPmemKeys = {{{"file", "file"},
                                           {"size", "size"},
                                           {"discard_writes", "discard_writes"},
                                           {"iommu", "iommu"},
                                           {"id", "id"},
                                           {"pci_segment", "pci_segment"}}};
constexpr std::array<Key, 5> kVsockKeys = {
    {{"cid", "cid"}, {"socket", "socket"}, {"iommu", "iommu"}, {"id", "id"}, {"pci_segment", "pci_segment"}}};
constexpr std::array<std::string_view, 11> kUnsupportedSections = {
    "balloon",      "devices",           "user_devices",   "vdpa",   "generic_vhost_user", "numa", "tpm",
    "pci_segments", "rate_limit_groups", "landlock_rules", "ivshmem"};

bool IsEmptySection(const Json& value) {
  return value.is_null() || ((value.is_array() || value.is_object()) && value.empty());
}

Result<std::string> OptionValue(const Json& value, std::string_view file, const std::string& field) {
  std::string text;
  if (value.is_boolean()) return std::string(value.get<bool>() ? "on" : "off");
  if (value.is_number_integer()) return value.dump();
  if (!value.is_string()) return FieldError(file, field, "expected a string, number or boolean, found " + value.dump());
  text = value.get<std::string>();
  if (text.find_first_of(",\"[]") != std::string::npos) {
    return FieldError(file, field, "'" + text + "' holds one of , \" [ ] which cloud-hypervisor's options cannot carry",
                      ErrorCode::kUnsupported);
  }
  return text;
}

// "k1=v1,k2=v2" from the present, non-null keys of `object`.
Result<std::string> OptionList(const Json& object, std::span<const Key> keys, std::string_view file,
                               const std::string& field) {
  if (!object.is_object()) return FieldError(file, field, "expected an object, found " + object.dump());
  std::string list;
  for (const Key& key : keys) {
    auto it = object.find(key.json);
    if (it == object.end() || it->is_null()) continue;
    Result<std::string> value = OptionValue(*it, file, field + "." + std::string(key.json));
    if (!value.ok()) return value.status();
    if (key.json == "vhost_mode") {
      for (char& c : *value) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    }
    if (!list.empty()) list += ',';
    list += key.cli;
    list += '=';
    list += *value;
  }
  return list;
}

class Builder {
 public:
  Builder(const Json& config, std::string_view file) : config_(config), file_(file) {}

  Status Object(std::string_view section, std::string_view flag, std::span<const Key> keys) {
    auto it = config_.find(section);
    if (it == config_.end() || it->is_null()) return Status::Ok();
    Result<std::string> list = OptionList(*it, keys, file_, std::string(section));
    if (!list.ok()) return list.status();
    if (!list->empty()) args_.insert(args_.end(), {std::string(flag), *list});
    return Status::Ok();
  }

  Status Array(std::string_view section, std::string_view flag, std::span<const Key> keys) {
    auto it = config_.find(section);
    if (it == config_.end() || it->is_null() || (it->is_array() && it->empty())) return Status::Ok();
    if (!it->is_array()) return FieldError(file_, section, "expected an array, found " + it->dump());
    args_.emplace_back(flag);
    for (size_t i = 0; i < it->size(); ++i) {
      std::string field = std::string(section) + "[" + std::to_string(i) + "]";
      Result<std::string> list = OptionList((*it)[i], keys, file_, field);
      if (!list.ok()) return list.status();
      args_.push_back(std::move(*list));
    }
    return Status::Ok();
  }

  Status Payload() {
    auto payload = config_.find("payload");
    if (payload == config_.end() || payload->is_null()) return Status::Ok();
    if (!payload->is_object()) return FieldError(file_, "payload", "expected an object");
    for (std::string_view key : {"kernel", "initramfs", "firmware", "cmdline"}) {
      auto it = payload->find(key);
      if (it == payload->end() || it->is_null()) continue;
      std::string field = "payload." + std::string(key);
      if (!it->is_string()) return FieldError(file_, field, "expected a string, found " + it->dump());
      args_.insert(args_.end(), {"--" + std::string(key), it->get<std::string>()});  // one argv element
    }
    return Status::Ok();
  }

  // serial / console: {"mode": "File", "file": ...} -> "file=<path>", {"mode": "Tty"} -> "tty".
  Status Console(std::string_view section) {
    auto it = config_.find(section);
    if (it == config_.end() || it->is_null()) return Status::Ok();
    std::string field(section);
    if (!it->is_object() || !it->contains("mode")) return FieldError(file_, field, "expected an object with a mode");
    Result<std::string> mode = StringAt(*it, "mode", file_, field + ".mode");
    if (!mode.ok()) return mode.status();
    std::string lower = *mode;
    for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    std::string spec = lower;
    if (lower == "file" || lower == "socket") {
      auto path = it->find(lower);
      if (path == it->end() || path->is_null()) {
        return FieldError(file_, field + "." + lower, "missing for mode " + *mode);
      }
      Result<std::string> value = OptionValue(*path, file_, field + "." + lower);
      if (!value.ok()) return value.status();
      spec = lower + "=" + *value;
    } else if (lower != "off" && lower != "null" && lower != "pty" && lower != "tty") {
      return FieldError(file_, field + ".mode", "unknown console mode '" + *mode + "'");
    }
    args_.insert(args_.end(), {"--" + field, spec});
    return Status::Ok();
  }

  void Flag(std::string_view key) {
    if (BoolOr(config_, std::string(key), false)) args_.push_back("--" + std::string(key));
  }

  std::vector<std::string> Take() { return std::move(args_); }

 private:
  const Json& config_;
  std::string_view file_;
  std::vector<std::string> args_;
};

Status CheckExpressible(const Json& config, std::string_view file) {
  for (std::string_view section : kUnsupportedSections) {
    auto it = config.find(section);
    if (it != config.end() && !IsEmptySection(*it)) {
      return FieldError(file, section, "booting from forkengine's command line does not carry this section",
                        ErrorCode::kUnsupported);
    }
  }
  auto memory = config.find("memory");
  if (memory != config.end() && memory->is_object()) {
    auto zones = memory->find("zones");
    if (zones != memory->end() && !IsEmptySection(*zones)) {
      return FieldError(file, "memory.zones", "booting from forkengine's command line does not carry memory zones",
                        ErrorCode::kUnsupported);
    }
  }
  return Status::Ok();
}

}  // namespace

Result<std::vector<std::string>> BootArguments(const Json& config, std::string_view file) {
  if (!config.is_object()) return FieldError(file, "(root)", "expected an object");
  FE_RETURN_IF_ERROR(CheckExpressible(config, file));
  Builder builder(config, file);
  FE_RETURN_IF_ERROR(builder.Object("cpus", "--cpus", kCpuKeys));
  FE_RETURN_IF_ERROR(builder.Object("memory", "--memory", kMemoryKeys));
  FE_RETURN_IF_ERROR(builder.Payload());
  FE_RETURN_IF_ERROR(builder.Array("disks", "--disk", kDiskKeys));
  FE_RETURN_IF_ERROR(builder.Array("net", "--net", kNetKeys));
  FE_RETURN_IF_ERROR(builder.Object("rng", "--rng", kRngKeys));
  FE_RETURN_IF_ERROR(builder.Array("fs", "--fs", kFsKeys));
  FE_RETURN_IF_ERROR(builder.Array("pmem", "--pmem", kPmemKeys));
  FE_RETURN_IF_ERROR(builder.Console("serial"));
  FE_RETURN_IF_ERROR(builder.Console("console"));
  FE_RETURN_IF_ERROR(builder.Object("vsock", "--vsock", kVsockKeys));
  builder.Flag("watchdog");
  builder.Flag("pvpanic");
  return builder.Take();
}

}  // namespace fe::hypervisor::cloud_hypervisor
