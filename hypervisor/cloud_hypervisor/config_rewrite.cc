#include "hypervisor/cloud_hypervisor/config_rewrite.h"

namespace fe::hypervisor::cloud_hypervisor {
namespace {

Status RewriteVsockCid(Json& config, const ConfigRewrite& rewrite, std::string_view file) {
  if (rewrite.keep_vsock_cid) return Status::Ok();
  auto vsock = config.find("vsock");
  if (vsock == config.end() || vsock->is_null()) return Status::Ok();
  if (!vsock->is_object()) return FieldError(file, "vsock", "expected an object, found " + vsock->dump());
  if (rewrite.target_identity.vsock_cid < 3) {
    return FieldError(file, "vsock.cid", "the target identity has no vsock CID (>= 3) to give the fork");
  }
  (*vsock)["cid"] = rewrite.target_identity.vsock_cid;
  return Status::Ok();
}

}  // namespace

Status RewriteConfig(Json& config, const ConfigRewrite& rewrite, std::string_view file) {
  FE_RETURN_IF_ERROR(RewritePathFields(config, rewrite.paths, file));
  FE_RETURN_IF_ERROR(RewriteNetIdentity(config, rewrite.source_identity, rewrite.target_identity, file));
  return RewriteVsockCid(config, rewrite, file);
}

Result<std::string> RewriteConfigText(std::string_view text, const ConfigRewrite& rewrite, std::string_view file) {
  Result<Json> config = ParseObject(text, file);
  if (!config.ok()) return config.status();
  FE_RETURN_IF_ERROR(RewriteConfig(*config, rewrite, file));
  return config->dump(2) + "\n";
}

}  // namespace fe::hypervisor::cloud_hypervisor
