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
  const ErrorCode code = frozen.status().code();
  if (code == ErrorCode::kUnsupported || code == ErrorCode::kFailedPrecondition) {
    return Status::Unsupported(frozen.status().message());  // the guest answered: it cannot be frozen
  }
  // No answer in time: an agent that answers late may freeze after all, and the thaw queues behind it.
  (void)hypervisor::ThawGuestFilesystems(fd.get(), std::chrono::milliseconds(100), peer);
  return frozen.status();
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
