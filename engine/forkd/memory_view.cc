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
  // private_bytes: pages no other process maps, what the instance costs on its own (a shared-memory
  // fork's copies of the pages it wrote, a private fork's own RAM file pages too); anonymous_bytes:
  // the written pages and the VMM's heap.
  view["memory"]["resident"] = memory ? nlohmann::json{{"rss_bytes", memory->rss_bytes},
                                                       {"pss_bytes", memory->pss_bytes},
                                                       {"private_bytes", memory->private_bytes},
                                                       {"anonymous_bytes", memory->anonymous_bytes},
                                                       {"shared_bytes", memory->shared_bytes}}
                                      : nlohmann::json(nullptr);
  return view;
}

}  // namespace fe::engine::forkd
