// Walking typed fields of a cloud-hypervisor VmConfig JSON by a field pattern, with error messages
// that name the file and the field ("config.json: disks[1].path: ..."). Not a second field reader
// (base/json_fields.h reads the fields of one object): this visits every field a pattern reaches, so
// the path rewrite and the identity rewrite cannot miss a disk, a net or a payload path.
//
// A pattern is a dotted list of object keys; a key followed by "[]" visits every element of that
// array: "disks[].path", "payload.kernel", "payload.fw_cfg_config.items.item_list[].file". Absent and
// null fields on the way are skipped (cloud-hypervisor omits unset options); a field of the wrong JSON
// type is an InvalidArgument error.
#pragma once

#include <functional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "base/status.h"
#include "snapshot/config_json.h"

namespace fe::hypervisor::cloud_hypervisor {

using Json = snapshot::ConfigJson;
using snapshot::FieldError;
using snapshot::ParseObject;

// Called for each present, non-null field the pattern reaches: its parent object, its key and its
// field path ("disks[1].path").
using FieldVisitor = std::function<Status(Json& parent, const std::string& key, const std::string& field)>;

Status ForEachField(Json& root, std::string_view pattern, std::string_view file, const FieldVisitor& visit);

// The string at parent[key], or an error naming the field when it is not a string.
Result<std::string> StringAt(const Json& parent, const std::string& key, std::string_view file, std::string_view field);

// parent[key] when it is a boolean, else `fallback` (absent, null or another type).
bool BoolOr(const Json& parent, const std::string& key, bool fallback);

}  // namespace fe::hypervisor::cloud_hypervisor
