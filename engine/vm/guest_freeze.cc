#include "engine/vm/guest_freeze.h"

#include "engine/vm/vm_runner.h"
#include "hypervisor/identity_handoff.h"

namespace fe::engine::vm {

Result<GuestFreeze> GuestFreeze::Freeze(const AgentAccess& agent, std::chrono::milliseconds thaw_after) {
  const std::string what = "freezing the filesystems of " + agent.who;
  if (agent.channel.kind == hypervisor::IdentityChannel::Kind::kNone) {
    return Status::Unsupported(what + ": it has no guest agent channel");
  }
  const auto deadline = std::chrono::steady_clock::now() + agent.timeout;
  std::string peer;
  Result<std::optional<UniqueFd>> stream = ConnectGuestAgent(agent.channel, deadline, agent.who, peer);
  if (!stream.ok()) return stream.status().Annotate(what);
  if (!stream->has_value()) return Status::Unsupported(what + ": no guest agent listens");
  UniqueFd fd = std::move(**stream);
  Result<std::vector<std::string>> frozen =
      hypervisor::FreezeGuestFilesystems(fd.get(), thaw_after, agent.timeout, peer);
  if (frozen.ok()) return GuestFreeze(std::move(fd), peer, agent.timeout, std::move(*frozen));
  // An agent that answered late may freeze after all: the thaw queues behind the freeze.
  (void)hypervisor::ThawGuestFilesystems(fd.get(), std::chrono::milliseconds(100), peer);
  const bool refused = frozen.status().code() == ErrorCode::kUnsupported ||
                       frozen.status().message().find("could not freeze") != std::string::npos;
  return Status(refused ? ErrorCode::kUnsupported : frozen.status().code(), frozen.status().message());
}

GuestFreeze::~GuestFreeze() {
  if (stream_) (void)Thaw();
}

Status GuestFreeze::Thaw() {
  if (!stream_) return Status::FailedPrecondition("the filesystems of the " + peer_ + " were thawed already");
  Result<hypervisor::GuestThaw> thawed = hypervisor::ThawGuestFilesystems(stream_.get(), timeout_, peer_);
  stream_ = UniqueFd();
  if (!thawed.ok()) return thawed.status();
  if (!thawed->held) {
    return Status::FailedPrecondition("the " + peer_ +
                                      " had thawed its filesystems at their deadline already: its disks may have "
                                      "changed before the capture");
  }
  return Status::Ok();
}

}  // namespace fe::engine::vm
