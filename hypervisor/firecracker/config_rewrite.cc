#include "hypervisor/firecracker/config_rewrite.h"

#include <optional>

namespace fe::hypervisor::firecracker {
namespace {

// What to do with a path that stays outside the source directory.
enum class Outside {
  kKeep,    // shared read-only: kernel, initrd, CPU template
  kRefuse,  // the fork would write or bind what the source owns
};

struct PathField {
  const char* key;
  Outside outside;
  std::string_view why;  // for kRefuse
};

// Rewrites parent[key] (when present and not null). `read_only` turns kRefuse into kKeep.
Status RewritePath(Json& parent, const PathField& spec, const std::string& field, const ConfigRewrite& rewrite,
                   std::string_view file, bool read_only = false) {
  auto it = parent.find(spec.key);
  if (it == parent.end() || it->is_null()) return Status::Ok();
  if (!it->is_string()) return FieldError(file, field, "expected a path string, found " + it->dump());
  const std::string value = it->get<std::string>();
  if (value.empty()) return Status::Ok();
  if (value.front() != '/') {
    return FieldError(file, field,
                      "'" + value +
                          "' is relative: the fork's firecracker would resolve it against the same working "
                          "directory as the source's; use an absolute path");
  }
  if (Status checked = rewrite.paths.Check(value); !checked.ok()) {
    return FieldError(file, field, checked.message(), checked.code());
  }
  if (std::optional<std::string> rewritten = rewrite.paths.Rewrite(value)) {
    *it = *rewritten;
    return Status::Ok();
  }
  if (spec.outside == Outside::kKeep || read_only) return Status::Ok();
  return FieldError(
      file, field,
      "'" + value + "' is outside the source directory " + rewrite.paths.source_dir() + ": " + std::string(spec.why),
      ErrorCode::kUnsupported);
}

Status RewriteObjectPath(Json& config, const char* object_key, const PathField& spec, const ConfigRewrite& rewrite,
                         std::string_view file) {
  auto object = config.find(object_key);
  if (object == config.end() || object->is_null()) return Status::Ok();
  if (!object->is_object()) return FieldError(file, object_key, "expected an object, found " + object->dump());
  return RewritePath(*object, spec, FieldName(object_key, spec.key), rewrite, file);
}

// drives[] and pmem[]: `read_only_key` marks entries whose outside path may be shared.
Status RewriteDiskArray(Json& config, const char* array_key, const char* read_only_key, const ConfigRewrite& rewrite,
                        std::string_view file) {
  auto array = config.find(array_key);
  if (array == config.end() || array->is_null()) return Status::Ok();
  if (!array->is_array()) return FieldError(file, array_key, "expected an array, found " + array->dump());
  for (size_t i = 0; i < array->size(); ++i) {
    Json& entry = (*array)[i];
    const std::string field = std::string(array_key) + "[" + std::to_string(i) + "]";
    if (!entry.is_object()) return FieldError(file, field, "expected an object, found " + entry.dump());
    auto socket = entry.find("socket");
    if (socket != entry.end() && !socket->is_null()) {
      return FieldError(file, field + ".socket",
                        "a vhost-user drive: its backend serves the source's disk, and two VMs must not write one disk",
                        ErrorCode::kUnsupported);
    }
    auto read_only = entry.find(read_only_key);
    const bool is_read_only = read_only != entry.end() && read_only->is_boolean() && read_only->get<bool>();
    const PathField spec{"path_on_host", Outside::kRefuse, "a writable disk both VMs would write"};
    FE_RETURN_IF_ERROR(RewritePath(entry, spec, field + ".path_on_host", rewrite, file, is_read_only));
  }
  return Status::Ok();
}

Status RewriteNetwork(Json& config, const NetworkIdentity& target, std::string_view file) {
  auto array = config.find("network-interfaces");
  if (array == config.end() || array->is_null()) return Status::Ok();
  if (!array->is_array()) return FieldError(file, "network-interfaces", "expected an array, found " + array->dump());
  if (array->empty()) return Status::Ok();
  if (array->size() > 1) {
    std::string tap = (*array)[1].is_object() ? (*array)[1].value("host_dev_name", std::string("?")) : "?";
    return FieldError(
        file, "network-interfaces[1]",
        "a fork gets one network identity; this second interface would keep the source's TAP '" + tap + "'",
        ErrorCode::kUnsupported);
  }
  Json& nic = (*array)[0];
  if (!nic.is_object()) return FieldError(file, "network-interfaces[0]", "expected an object, found " + nic.dump());
  Result<std::string> tap = StringMember(nic, "host_dev_name", file, "network-interfaces[0]", /*required=*/true);
  if (!tap.ok()) return tap.status();
  if (target.tap_device.empty()) {
    return FieldError(file, "network-interfaces[0].host_dev_name", "the fork's network identity has no TAP device");
  }
  Result<std::string> mac = StringMember(nic, "guest_mac", file, "network-interfaces[0]", /*required=*/false);
  if (!mac.ok()) return mac.status();
  nic["host_dev_name"] = target.tap_device;
  if (!target.mac.empty()) {
    nic["guest_mac"] = target.mac;
  } else {
    nic.erase("guest_mac");  // firecracker then lets the guest pick one: never the source's
  }
  return Status::Ok();
}

Status RewriteVsockCid(Json& config, const NetworkIdentity& target, std::string_view file) {
  auto vsock = config.find("vsock");
  if (vsock == config.end() || vsock->is_null()) return Status::Ok();
  if (!vsock->is_object()) return FieldError(file, "vsock", "expected an object, found " + vsock->dump());
  auto cid = vsock->find("guest_cid");
  if (cid == vsock->end() || cid->is_null()) return Status::Ok();
  if (!cid->is_number_unsigned()) return FieldError(file, "vsock.guest_cid", "expected a number, found " + cid->dump());
  if (target.vsock_cid < 3) {
    return FieldError(file, "vsock.guest_cid", "the fork's network identity has no vsock CID (it needs one >= 3)");
  }
  *cid = target.vsock_cid;
  return Status::Ok();
}

}  // namespace

Status RewriteConfig(Json& config, const ConfigRewrite& rewrite, std::string_view file) {
  if (!config.is_object()) return FieldError(file, "(root)", "expected an object");
  const PathField kernel{"kernel_image_path", Outside::kKeep, ""};
  const PathField initrd{"initrd_path", Outside::kKeep, ""};
  const PathField cpu_config{"cpu-config", Outside::kKeep, ""};
  const PathField vsock{"uds_path", Outside::kRefuse, "the fork's firecracker would bind the source's vsock socket"};
  const PathField log{"log_path", Outside::kRefuse, "both VMs would write one log"};
  const PathField metrics{"metrics_path", Outside::kRefuse, "both VMs would write one metrics file"};
  const PathField serial{"serial_out_path", Outside::kRefuse, "both VMs would write one serial output file"};
  FE_RETURN_IF_ERROR(RewriteObjectPath(config, "boot-source", kernel, rewrite, file));
  FE_RETURN_IF_ERROR(RewriteObjectPath(config, "boot-source", initrd, rewrite, file));
  FE_RETURN_IF_ERROR(RewritePath(config, cpu_config, "cpu-config", rewrite, file));
  FE_RETURN_IF_ERROR(RewriteDiskArray(config, "drives", "is_read_only", rewrite, file));
  FE_RETURN_IF_ERROR(RewriteDiskArray(config, "pmem", "read_only", rewrite, file));
  FE_RETURN_IF_ERROR(RewriteObjectPath(config, "vsock", vsock, rewrite, file));
  FE_RETURN_IF_ERROR(RewriteObjectPath(config, "logger", log, rewrite, file));
  FE_RETURN_IF_ERROR(RewriteObjectPath(config, "metrics", metrics, rewrite, file));
  FE_RETURN_IF_ERROR(RewriteObjectPath(config, "serial", serial, rewrite, file));
  FE_RETURN_IF_ERROR(RewriteNetwork(config, rewrite.target_identity, file));
  return RewriteVsockCid(config, rewrite.target_identity, file);
}

Result<std::string> RewriteConfigText(std::string_view text, const ConfigRewrite& rewrite, std::string_view file) {
  Result<Json> config = ParseObject(text, file);
  if (!config.ok()) return config.status();
  FE_RETURN_IF_ERROR(RewriteConfig(*config, rewrite, file));
  return config->dump(2) + "\n";
}

}  // namespace fe::hypervisor::firecracker
