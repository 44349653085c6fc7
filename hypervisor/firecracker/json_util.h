// JSON helpers of the firecracker plugin: ordered objects (a rewrite keeps the file's key order) and
// errors that name the file and the field ("config.json: drives[1].path_on_host: ...").
#pragma once

#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "base/status.h"
#include "snapshot/config_json.h"

namespace fe::hypervisor::firecracker {

using Json = snapshot::ConfigJson;
using snapshot::FieldError;
using snapshot::ParseObject;

// object[key] when present and not null, else nullptr; an error when `object` is not an object.
Result<const Json*> Member(const Json& object, const char* key, std::string_view file, std::string_view field);

// The string object[key]: missing/null -> "" unless `required`; another type -> error.
Result<std::string> StringMember(const Json& object, const char* key, std::string_view file, std::string_view field,
                                 bool required);

// "<parent>.<key>", or "<key>" at the root.
std::string FieldName(std::string_view parent, std::string_view key);

}  // namespace fe::hypervisor::firecracker
