// The table of storage backends: a new backend is its folder under storage/ plus one row here
// (backend_registry.cc), and the conformance suite (tests/storage/registry) runs over every row.
#pragma once

#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "base/status.h"
#include "storage/backend.h"
#include "storage/registry/backend_selection.h"

namespace fe::storage::registry {

struct SelectionContext {
  const std::string& root;
  const tree::FilesystemProbe& probe;
  const HostFacts& host;
  bool forced;  // the configuration names this backend: say why not instead of passing
};

struct BackendEntry {
  std::string_view name;  // what the configuration and Backend::Name() call it
  // Why this backend serves the root; nullopt when it does not apply (auto tries the next row); an
  // error when it must not be used (forced but unsupported, or a configured pool the host cannot run).
  Result<std::optional<std::string>> (*probe)(const SelectionContext& context);
  Result<std::unique_ptr<Backend>> (*open)(const StorageConfig& config, const tree::FilesystemProbe& probe,
                                           const BackendDecision& decision);
};

// Every backend, cheapest clone first: the order auto tries them in.
std::span<const BackendEntry> RegisteredBackends();
// The row named `name`, or nullptr.
const BackendEntry* FindBackend(std::string_view name);

}  // namespace fe::storage::registry
