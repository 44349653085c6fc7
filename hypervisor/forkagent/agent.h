// The agent's request handling: one request line in, one reply line out. It validates the request,
// answers freeze and thaw (FilesystemFreezer), applies the generation rule (refuse a generation lower than the last one
// applied, re-apply an equal one), has an IdentityApplier change the network and the clock, and encodes the answer. No
// I/O of its own, so it is tested with an applier that records calls.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "base/status.h"
#include "hypervisor/forkagent/filesystem_freeze.h"
#include "hypervisor/forkagent/protocol.h"

namespace fe::hypervisor::forkagent {

// What the agent changes in the guest. Errors name the step that failed and errno's text.
class IdentityApplier {
 public:
  virtual ~IdentityApplier() = default;
  // Gives the NIC with `previous_mac` (nullptr: the only non-loopback NIC) `identity`.
  virtual Status ApplyNetwork(const GuestIdentity& identity, const MacAddress* previous_mac) = 0;
  // Steps CLOCK_REALTIME to `realtime_ns`.
  virtual Status StepClock(int64_t realtime_ns) = 0;
};

struct HandledRequest {
  std::string reply;          // the line to send back, with its '\n'
  bool acknowledged = false;  // the reply is an ack
  std::string summary;        // one line for the log: what was asked and what happened
};

class Agent {
 public:
  // Without a `freezer`, freeze and thaw requests are refused as invalid (as by an agent that predates them).
  explicit Agent(IdentityApplier& applier, FilesystemFreezer* freezer = nullptr)
      : applier_(applier), freezer_(freezer) {}

  HandledRequest Handle(std::string_view line);

  // The generation last applied successfully; nullopt before the first.
  std::optional<uint64_t> applied_generation() const { return applied_generation_; }

 private:
  HandledRequest HandleFreeze(std::string_view line);
  HandledRequest HandleThaw(std::string_view line);

  IdentityApplier& applier_;
  FilesystemFreezer* freezer_;
  // Kept in memory only: a fork inherits it with the rest of the guest's memory, which is exactly
  // the lineage whose generations the engine numbers.
  std::optional<uint64_t> applied_generation_;
};

}  // namespace fe::hypervisor::forkagent
