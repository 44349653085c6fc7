#include "hypervisor/forkagent/agent.h"

namespace fe::hypervisor::forkagent {

namespace {

std::string Joined(const std::vector<std::string>& mounts) {
  std::string text;
  for (const std::string& mount : mounts) text += (text.empty() ? "" : " ") + mount;
  return text.empty() ? "(none)" : text;
}

// An error reply to `line`: `what` (the request) "rejected" when it did not parse, else "failed".
HandledRequest Refused(std::string_view line, std::string_view nonce, std::string_view what, const Status& why,
                       bool parsed) {
  HandledRequest handled;
  handled.reply =
      EncodeError(parsed ? nonce : NonceOf(line), parsed ? kApplyFailed : RejectionCode(why), why.message());
  handled.summary = std::string(what) + (parsed ? " failed: " : " rejected: ") + why.message();
  return handled;
}

}  // namespace

HandledRequest Agent::HandleFreeze(std::string_view line) {
  Result<FreezeRequest> request = ParseFreezeRequest(line);
  if (request.ok() && freezer_ == nullptr) request = Status::InvalidArgument("this agent cannot freeze filesystems");
  if (!request.ok()) return Refused(line, "", "freeze", request.status(), /*parsed=*/false);
  Result<std::vector<std::string>> frozen = freezer_->Freeze(std::chrono::milliseconds(request->thaw_after_ms));
  if (!frozen.ok()) return Refused(line, request->nonce, "freeze", frozen.status(), /*parsed=*/true);
  HandledRequest handled;
  handled.reply = EncodeFreezeAck(request->nonce, *frozen);
  handled.acknowledged = true;
  handled.summary = "froze " + Joined(*frozen) + " for at most " + std::to_string(request->thaw_after_ms) + " ms";
  return handled;
}

HandledRequest Agent::HandleThaw(std::string_view line) {
  Result<ThawRequest> request = ParseThawRequest(line);
  if (request.ok() && freezer_ == nullptr) request = Status::InvalidArgument("this agent cannot freeze filesystems");
  if (!request.ok()) return Refused(line, "", "thaw", request.status(), /*parsed=*/false);
  Result<ThawOutcome> thawed = freezer_->Thaw();
  if (!thawed.ok()) return Refused(line, request->nonce, "thaw", thawed.status(), /*parsed=*/true);
  HandledRequest handled;
  handled.reply = EncodeThawAck(request->nonce, thawed->thawed, thawed->held);
  handled.acknowledged = true;
  handled.summary = "thawed " + Joined(thawed->thawed) + (thawed->held ? "" : " (the freeze had ended already)");
  return handled;
}

HandledRequest Agent::Handle(std::string_view line) {
  const std::string type = RequestType(line);
  if (type == "freeze") return HandleFreeze(line);
  if (type == "thaw") return HandleThaw(line);
  HandledRequest handled;
  if (type == "set_time") {
    // The host paused or restored this guest, which keeps its identity: only its clock is behind.
    Result<TimeRequest> request = ParseTimeRequest(line);
    Status stepped = request.ok() ? applier_.StepClock(request->host_realtime_ns) : request.status();
    if (!stepped.ok()) {
      handled.reply =
          EncodeError(NonceOf(line), request.ok() ? kApplyFailed : RejectionCode(stepped), stepped.message());
      handled.summary = "set_time failed: " + stepped.message();
      return handled;
    }
    handled.reply = EncodeTimeAck(request->nonce);
    handled.acknowledged = true;
    handled.summary = "clock set to the host's";
    return handled;
  }
  Result<IdentityRequest> request = ParseIdentityRequest(line);
  if (!request.ok()) {
    handled.reply = EncodeError(NonceOf(line), RejectionCode(request.status()), request.status().message());
    handled.summary = "rejected: " + request.status().message();
    return handled;
  }
  const std::string generation = "generation " + std::to_string(request->generation);
  if (applied_generation_ && request->generation < *applied_generation_) {
    std::string message = generation + " is older than the applied generation " + std::to_string(*applied_generation_);
    handled.reply = EncodeError(request->nonce, kStaleGeneration, message);
    handled.summary = "refused: " + message;
    return handled;
  }
  // A fork restored from RAM captured while its source's filesystems were frozen is still frozen: a
  // new machine starts thawed (its own deadline would thaw it too, later).
  if (freezer_ != nullptr) (void)freezer_->Thaw();
  const MacAddress* previous = request->has_previous_mac ? &request->previous_mac : nullptr;
  // The clock first: the host's time in the request is when it was sent, and the network apply takes
  // a while (a few hundred ms in a TCG guest), so stepping after it would leave the clock that much
  // behind. It is stepped whatever the network then does: a stale clock breaks TLS on its own.
  Status clock = applier_.StepClock(request->host_realtime_ns);
  Status applied = applier_.ApplyNetwork(request->identity, previous);
  if (applied.ok()) applied = clock;
  if (!applied.ok()) {
    handled.reply = EncodeError(request->nonce, kApplyFailed, applied.message());
    handled.summary = generation + " failed: " + applied.message();
    return handled;
  }
  applied_generation_ = request->generation;
  handled.reply = EncodeAck(request->nonce, request->generation);
  handled.acknowledged = true;
  handled.summary = generation + " applied: " + FormatMac(request->identity.mac) + " " +
                    FormatIpv4(request->identity.ipv4) + "/" + std::to_string(request->identity.prefix_length) +
                    " via " + FormatIpv4(request->identity.gateway);
  return handled;
}

}  // namespace fe::hypervisor::forkagent
