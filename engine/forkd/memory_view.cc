#include "engine/forkd/memory_view.h"

namespace fe::engine::forkd {

std::optional<vm::ProcessMemory> ResidentMemory(const engine::Instance& instance) {
  if (instance.state != engine::InstanceState::kRunning || !instance.process) return std::nullopt;
  Result<vm::ProcessMemory> memory = vm::ReadProcessMemory(*instance.process);
  if (!memory.ok()) return std::nullopt;
  return *memory;
}

nlohmann::json InstanceViewWithMemory(const engine::Instance& instance) {
  nlohmann::json view = engine::InstanceToJson(instance);
  std::optional<vm::ProcessMemory> memory = ResidentMemory(instance);
  // Private memory is the process's anonymous memory: the pages the guest wrote (a shared-memory
  // fork's copies of the template's pages among them) and the VMM's own heap.
  view["memory"]["resident"] = memory ? nlohmann::json{{"rss_bytes", memory->rss_bytes},
                                                       {"pss_bytes", memory->pss_bytes},
                                                       {"private_bytes", memory->anonymous_bytes},
                                                       {"shared_bytes", memory->shared_bytes}}
                                      : nlohmann::json(nullptr);
  return view;
}

}  // namespace fe::engine::forkd
