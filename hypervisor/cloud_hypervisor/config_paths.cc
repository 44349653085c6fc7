// Path fields of a VmConfig: which exist, and which may stay outside the source directory.
#include <array>
#include <optional>

#include "hypervisor/cloud_hypervisor/config_rewrite.h"

namespace fe::hypervisor::cloud_hypervisor {
namespace {

// What keeping a path outside the source directory would mean for a fork running beside it.
enum class Outside {
  kShared,          // read-only or a client connection: sharing is fine
  kWritableDisk,    // two VMs would write one image unless the entry is read-only
  kWritablePmem,    // likewise, unless discard_writes
  kLog,             // the fork would truncate and write the source's log
  kBoundSocket,     // the fork's hypervisor would bind the source's socket
  kVhostSocket,     // bound in vhost_mode "Server", else a client connection
};

struct PathField {
  std::string_view pattern;
  Outside outside;
};

constexpr std::array<PathField, 24> kPathFields = {{
    {"payload.kernel", Outside::kShared},
    {"payload.initramfs", Outside::kShared},
    {"payload.firmware", Outside::kShared},
    {"payload.igvm", Outside::kShared},
    {"payload.fw_cfg_config.items.item_list[].file", Outside::kShared},
    {"disks[].path", Outside::kWritableDisk},
    {"disks[].vhost_socket", Outside::kShared},
    {"net[].vhost_socket", Outside::kVhostSocket},
    {"fs[].socket", Outside::kShared},
    {"pmem[].file", Outside::kWritablePmem},
    {"serial.file", Outside::kLog},
    {"serial.socket", Outside::kBoundSocket},
    {"console.file", Outside::kLog},
    {"console.socket", Outside::kBoundSocket},
    {"debug_console.file", Outside::kLog},
    {"vsock.socket", Outside::kBoundSocket},
    {"memory.zones[].file", Outside::kShared},
    {"generic_vhost_user[].socket", Outside::kShared},
    {"user_devices[].socket", Outside::kShared},
    {"vdpa[].path", Outside::kShared},
    {"rng.src", Outside::kShared},
    {"tpm.socket", Outside::kShared},
    {"landlock_rules[].path", Outside::kShared},
    {"ivshmem.path", Outside::kShared},
}};

// Why `parent` may not keep its path outside the source directory, or empty when it may.
std::string_view OutsideRefusal(Outside outside, const Json& parent) {
  switch (outside) {
    case Outside::kShared:
      return {};
    case Outside::kWritableDisk:
      if (BoolOr(parent, "readonly", false) || BoolOr(parent, "vhost_user", false)) return {};
      return "a writable disk outside the source directory: two VMs must not write one disk";
    case Outside::kWritablePmem:
      if (BoolOr(parent, "discard_writes", false)) return {};
      return "a writable pmem file outside the source directory: two VMs must not write one file";
    case Outside::kLog:
      return "a log file outside the source directory: the fork would overwrite the source's log";
    case Outside::kBoundSocket:
      return "a socket outside the source directory: the fork would bind the source's socket";
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
  return ForEachField(config, path_field.pattern, file,
                      [&](Json& parent, const std::string& key, const std::string& field) -> Status {
                        Result<std::string> value = StringAt(parent, key, file, field);
                        if (!value.ok()) return value.status();
                        if (std::optional<std::string> rewritten = paths.Rewrite(*value)) {
                          parent[key] = std::move(*rewritten);
                          return Status::Ok();
                        }
                        std::string_view refusal = OutsideRefusal(path_field.outside, parent);
                        if (refusal.empty()) return Status::Ok();
                        return FieldError(file, field,
                                          "'" + *value + "' is " + std::string(refusal) + " (" +
                                              paths.source_dir() + ")",
                                          ErrorCode::kUnsupported);
                      });
}

}  // namespace

Status RewritePathFields(Json& config, const snapshot::PathRewriter& paths, std::string_view file) {
  for (const PathField& path_field : kPathFields) {
    FE_RETURN_IF_ERROR(RewriteField(config, path_field, paths, file));
  }
  return Status::Ok();
}

}  // namespace fe::hypervisor::cloud_hypervisor
