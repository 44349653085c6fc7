#include "hypervisor/firecracker/json_util.h"

namespace fe::hypervisor::firecracker {

Result<const Json*> Member(const Json& object, const char* key, std::string_view file, std::string_view field) {
  if (!object.is_object()) return FieldError(file, field, "expected an object, found " + object.dump());
  auto it = object.find(key);
  if (it == object.end() || it->is_null()) return static_cast<const Json*>(nullptr);
  return &*it;
}

Result<std::string> StringMember(const Json& object, const char* key, std::string_view file, std::string_view field,
                                 bool required) {
  const std::string name = FieldName(field, key);
  Result<const Json*> value = Member(object, key, file, field.empty() ? "(root)" : field);
  if (!value.ok()) return value.status();
  if (*value == nullptr) {
    if (required) return FieldError(file, name, "missing");
    return std::string();
  }
  if (!(*value)->is_string()) return FieldError(file, name, "expected a string, found " + (*value)->dump());
  return (*value)->get<std::string>();
}

std::string FieldName(std::string_view parent, std::string_view key) {
  return parent.empty() ? std::string(key) : std::string(parent) + "." + std::string(key);
}

}  // namespace fe::hypervisor::firecracker
