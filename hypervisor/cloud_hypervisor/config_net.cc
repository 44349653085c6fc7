// The network identity of a VmConfig's NICs (see RewriteNetIdentity in config_rewrite.h).
#include <algorithm>
#include <cctype>
#include <cstdint>
#include <vector>

#include "hypervisor/cloud_hypervisor/config_rewrite.h"

namespace fe::hypervisor::cloud_hypervisor {
namespace {

std::string Lower(std::string text) {
  std::transform(text.begin(), text.end(), text.begin(), [](unsigned char c) { return std::tolower(c); });
  return text;
}

std::string MaskFromPrefix(int prefix_length) {
  uint32_t mask = prefix_length <= 0 ? 0 : prefix_length >= 32 ? 0xffffffffu : ~((1u << (32 - prefix_length)) - 1);
  return std::to_string(mask >> 24) + "." + std::to_string((mask >> 16) & 0xff) + "." +
         std::to_string((mask >> 8) & 0xff) + "." + std::to_string(mask & 0xff);
}

std::string OptionalString(const Json& nic, const char* key) {
  auto it = nic.find(key);
  return it != nic.end() && it->is_string() ? it->get<std::string>() : std::string();
}

bool CarriesIdentity(const Json& nic, const NetworkIdentity& source) {
  std::string tap = OptionalString(nic, "tap");
  std::string mac = OptionalString(nic, "mac");
  return (!source.tap_device.empty() && tap == source.tap_device) ||
         (!source.mac.empty() && Lower(mac) == Lower(source.mac));
}

Status ApplyIdentity(Json& nic, const NetworkIdentity& source, const NetworkIdentity& target, std::string_view file,
                     const std::string& field) {
  if (auto fds = nic.find("fds"); fds != nic.end() && !fds->is_null() && !(fds->is_array() && fds->empty())) {
    return FieldError(file, field + ".fds",
                      "a NIC on inherited file descriptors cannot be moved to the fork's TAP; name the TAP",
                      ErrorCode::kUnsupported);
  }
  if (!BoolOr(nic, "vhost_user", false) && !target.tap_device.empty()) nic["tap"] = target.tap_device;
  if (!target.mac.empty()) nic["mac"] = target.mac;
  if (auto ip = nic.find("ip"); ip != nic.end() && !ip->is_null()) {
    Result<std::string> value = StringAt(nic, "ip", file, field + ".ip");
    if (!value.ok()) return value.status();
    if (!source.ipv4.empty() && *value == source.ipv4) {
      *ip = target.ipv4;
    } else if (!source.gateway.empty() && *value == source.gateway) {
      *ip = target.gateway;
    }
  }
  if (auto mask = nic.find("mask"); mask != nic.end() && !mask->is_null()) *mask = MaskFromPrefix(target.prefix_length);
  nic.erase("host_mac");
  return Status::Ok();
}

}  // namespace

Status RewriteNetIdentity(Json& config, const NetworkIdentity& source, const NetworkIdentity& target,
                          std::string_view file) {
  auto net = config.find("net");
  if (net == config.end() || net->is_null()) return Status::Ok();
  if (!net->is_array()) return FieldError(file, "net", "expected an array, found " + net->dump());
  std::vector<size_t> identity;
  for (size_t i = 0; i < net->size(); ++i) {
    const Json& nic = (*net)[i];
    if (!nic.is_object()) return FieldError(file, "net[" + std::to_string(i) + "]", "expected an object");
    if (net->size() == 1 || CarriesIdentity(nic, source)) identity.push_back(i);
  }
  if (identity.size() > 1) {
    return FieldError(file, "net",
                      "net[" + std::to_string(identity[0]) + "] and net[" + std::to_string(identity[1]) +
                          "] both carry the source's identity");
  }
  for (size_t i = 0; i < net->size(); ++i) {
    std::string field = "net[" + std::to_string(i) + "]";
    Json& nic = (*net)[i];
    if (!identity.empty() && identity[0] == i) {
      FE_RETURN_IF_ERROR(ApplyIdentity(nic, source, target, file, field));
      continue;
    }
    std::string tap = OptionalString(nic, "tap");
    if (!tap.empty()) {
      return FieldError(file, field + ".tap",
                        "'" + tap + "' is not the source identity's TAP ('" + source.tap_device +
                            "'): the fork would share it with the source; a fork gets one network identity",
                        ErrorCode::kUnsupported);
    }
  }
  return Status::Ok();
}

}  // namespace fe::hypervisor::cloud_hypervisor
