// Rewriting the path fields of a VmConfig (the table is in path_fields.h).
#include <optional>

#include "hypervisor/cloud_hypervisor/config_rewrite.h"
#include "hypervisor/cloud_hypervisor/path_fields.h"

namespace fe::hypervisor::cloud_hypervisor {
namespace {

// Why `parent` may not keep its path outside the source directory, or empty when it may.
std::string_view OutsideRefusal(Outside outside, const Json& parent) {
  switch (outside) {
    case Outside::kShared: return {};
    case Outside::kWritableDisk:
      if (BoolOr(parent, "readonly", false) || BoolOr(parent, "vhost_user", false)) return {};
      return "a writable disk outside the source directory: two VMs must not write one disk";
    case Outside::kWritablePmem:
      if (BoolOr(parent, "discard_writes", false)) return {};
      return "a writable pmem file outside the source directory: two VMs must not write one file";
    case Outside::kLog: return "a log file outside the source directory: the fork would overwrite the source's log";
    case Outside::kBoundSocket: return "a socket outside the source directory: the fork would bind the source's socket";
    case Outside::kVhostSocket: {
      auto mode = parent.find("vhost_mode");
      if (mode == parent.end() || !mode->is_string() || mode->get<std::string>() != "Server") return {};
      return "a vhost-user server socket outside the source directory: the fork would bind the "
             "source's socket";
    }
  }
  return {};
}

Status RewriteField(Json& config, const PathField& path_field, const snapshot::PathRewriter& paths,
                    std::string_view file) {
  return ForEachField(
      config, path_field.pattern, file, [&](Json& parent, const std::string& key, const std::string& field) -> Status {
        Result<std::string> value = StringAt(parent, key, file, field);
        if (!value.ok()) return value.status();
        if (Status checked = paths.Check(*value); !checked.ok()) {
          return FieldError(file, field, checked.message(), checked.code());
        }
        if (std::optional<std::string> rewritten = paths.Rewrite(*value)) {
          parent[key] = std::move(*rewritten);
          return Status::Ok();
        }
        std::string_view refusal = OutsideRefusal(path_field.outside, parent);
        if (refusal.empty()) return Status::Ok();
        return FieldError(file, field, "'" + *value + "' is " + std::string(refusal) + " (" + paths.source_dir() + ")",
                          ErrorCode::kUnsupported);
      });
}

}  // namespace

Status RewritePathFields(Json& config, const snapshot::PathRewriter& paths, std::string_view file) {
  for (const PathField& path_field : PathFields()) {
    FE_RETURN_IF_ERROR(RewriteField(config, path_field, paths, file));
  }
  return Status::Ok();
}

}  // namespace fe::hypervisor::cloud_hypervisor
