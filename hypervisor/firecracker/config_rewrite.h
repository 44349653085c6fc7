// The pure half of the firecracker plugin: rewriting Firecracker's JSON config (the --config-file
// format: "boot-source", "drives", "network-interfaces", "vsock", "logger", ...) for a fork.
//
// What changes, by typed field only (never free text: boot-source.boot_args is left alone, and so is
// every field this rewrite does not name):
//  - Paths, rewritten only when the value is the source directory or beneath it (PathRewriter):
//    boot-source.kernel_image_path/initrd_path, cpu-config, drives[].path_on_host,
//    pmem[].path_on_host, vsock.uds_path, logger.log_path, metrics.metrics_path,
//    serial.serial_out_path.
//  - Paths that stay outside the source directory are kept where sharing them is harmless (kernel,
//    initrd, CPU template, read-only drives and pmem); the rest are refused (Unsupported, naming the
//    field) because the fork would then write or bind what the source owns: a writable drive or pmem
//    file, the vsock socket, the log, metrics and serial output files. A vhost-user drive (socket) is
//    refused too: its backend serves the source's disk.
//  - A relative path is refused (InvalidArgument): the fork's firecracker would resolve it against
//    the same working directory as the source's, reaching the source's file.
//  - Network identity: the one network interface gets the target's TAP (host_dev_name) and MAC
//    (guest_mac; removed when the target has none). A config with more than one interface is refused
//    (Unsupported): a fork has one identity, and another interface would keep the source's TAP.
//  - vsock.guest_cid becomes the target's CID (this config is only used to boot the fork afresh; a
//    restored guest keeps its CID in memory whatever the config says).
// Unknown fields and their order survive untouched.
#pragma once

#include <string>
#include <string_view>

#include "base/status.h"
#include "hypervisor/firecracker/json_util.h"
#include "hypervisor/plugin.h"
#include "snapshot/path_rewrite.h"

namespace fe::hypervisor::firecracker {

struct ConfigRewrite {
  snapshot::PathRewriter paths;
  NetworkIdentity target_identity;
};

// Rewrites `config` in place; `file` names the file in errors ("config.json").
Status RewriteConfig(Json& config, const ConfigRewrite& rewrite, std::string_view file);

// Text in, text out (pretty-printed JSON).
Result<std::string> RewriteConfigText(std::string_view text, const ConfigRewrite& rewrite, std::string_view file);

}  // namespace fe::hypervisor::firecracker
