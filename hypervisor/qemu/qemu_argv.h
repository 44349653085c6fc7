// The QEMU command line of an instance, built from its stored configuration (qemu_config.h).
//
// Booting and restoring use the same argv (the saved state only loads into the same machine and
// devices, in the same order); a restore adds `-incoming`. The QMP monitor is a Unix socket chardev
// with the reserved id "fe-qmp"; chardevs with a `virtio_port` hang off one virtio-serial-pci
// controller ("fe-virtio-serial"). Values inside QEMU option strings (`key=value,...`) have ',' doubled;
// paths inside an `exec:` migration URI are shell-quoted, since QEMU runs it with /bin/sh -c.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "hypervisor/qemu/qemu_config.h"

namespace fe::hypervisor::qemu {

struct Incoming {
  enum class Kind {
    kNone,     // boot
    kDefer,    // `-incoming defer`: wait for QMP migrate-incoming
    kExecCat,  // `-incoming 'exec:cat FILE'`: load FILE right away
  };
  Kind kind = Kind::kNone;
  std::string file;  // kExecCat only
};

// `shared_memory_file`: guest RAM is that file mapped privately (memory-backend-file share=off), not
// the config's memory_file: a shared-memory fork (plugin.h MemorySource). Requires a memory_file.
std::vector<std::string> BuildArgv(const Config& config, const Incoming& incoming = {},
                                   const std::string& shared_memory_file = "");

// "a,b" -> "a,,b": a value inside a QEMU key=value option string.
std::string EscapeOptionValue(std::string_view value);
// A single-quoted /bin/sh word.
std::string ShellQuote(std::string_view value);
// Migration URIs that stream the state to and from a file through cat.
std::string ExecCatToUri(const std::string& file);    // exec:cat > 'FILE'
std::string ExecCatFromUri(const std::string& file);  // exec:cat 'FILE'

}  // namespace fe::hypervisor::qemu
