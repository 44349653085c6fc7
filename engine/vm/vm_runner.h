// The hypervisor process of one instance: started through its plugin's Launch(), driven through
// its VmController, and recognised again after a daemon restart.
//
// A process is started in a session of its own (setsid), with stdin from /dev/null and stdout and
// stderr appended to <runtime_dir>/hypervisor.log, and is *not* a child that dies with forkd: VMs keep
// running across daemon restarts and upgrades. Its identity is (pid, start time from /proc), so a
// reused pid is never mistaken for it.
#pragma once

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "base/status.h"
#include "base/unique_fd.h"
#include "engine/vm/guest_freeze.h"
#include "engine/vm/process_record.h"
#include "hypervisor/identity_handoff.h"
#include "hypervisor/plugin.h"

namespace fe::engine::vm {

struct VmContext {
  const hypervisor::Plugin* plugin = nullptr;
  std::string guest_dir;    // the instance's volume: what Launch() is given
  std::string runtime_dir;  // <data_root>/instances/<id>: the log goes here
  hypervisor::NetworkIdentity identity;
  std::chrono::milliseconds timeout{10'000};  // API socket appearance, graceful exit
  // A shared-memory fork's restore maps this file instead of RAM of its own (hypervisor::MemorySource).
  hypervisor::MemorySource memory = {};
};

// Boots the VM from its configuration; returns once its API answers.
//
// Starting (BootVm, RestoreVm): the log gets a "forkengine: exec <argv>" line, then the hypervisor's
// output. A socket file at the API socket path that nobody serves (left by a killed hypervisor) is
// removed first; one that answers is FailedPrecondition (another process serves it). The API must
// answer within context.timeout. When the process exits first, or does not answer in time, or any
// later step fails, the process is killed and reaped and the error carries its exit status and the
// last lines it wrote to the log. A hypervisor binary that is missing or cannot be executed is
// Unsupported (this host cannot run it), naming the binary and the plugin's install hint.
Result<ProcessRecord> BootVm(const VmContext& context);
// Starts the hypervisor in restore mode, loads the snapshot in `snapshot_dir` (written by
// SnapshotAndStopVm of the same plugin), resumes it.
Result<ProcessRecord> RestoreVm(const VmContext& context, const std::string& snapshot_dir);
// Pauses the VM, writes its snapshot into `snapshot_dir` (created if missing; the plugin decides its
// files), and ends the process (API shutdown, SIGKILL past context.timeout). The VM is resumed (and
// keeps running) if the snapshot fails. FailedPrecondition when `process` no longer runs.
Status SnapshotAndStopVm(const VmContext& context, const ProcessRecord& process, const std::string& snapshot_dir);
// What the live-fork snapshot runs around its pause (each may be empty).
struct LiveSnapshotSteps {
  // Once the VM's API answers, just before the pause, while the VM runs (the RAM file's pre-flush): an
  // error ends the snapshot before anything is paused.
  std::function<Status()> before_pause;
  // As soon as the VM is paused (what the pause has to write back is measured; a throttle can end).
  std::function<void()> after_pause;
  // After the snapshot, the VM still paused (the clones of the instance's directory).
  std::function<Status()> while_paused;
};
// The live-fork snapshot: pauses the running VM, writes its snapshot into `snapshot_dir` (with guest
// RAM in a shared file, device state only: Capabilities().live_snapshot), runs the steps, and resumes
// the VM: the process never stops. The VM is resumed on every path once paused; the error is the
// first failure (a failed resume is added to it and leaves the VM paused). FailedPrecondition when
// `process` no longer runs.
Status SnapshotRunningVm(const VmContext& context, const ProcessRecord& process, const std::string& snapshot_dir,
                         const LiveSnapshotSteps& steps);
// How the background-snapshot fork held the source's disks still from their clones to the capture.
struct SourceHold {
  bool frozen = false;                                  // its agent froze the guest's filesystems; the VM ran on
  std::vector<std::string> frozen_mounts;               // what the agent froze
  std::optional<std::chrono::microseconds> vm_stopped;  // the hypervisor's own stop for the capture
  std::string paused_because;                           // not frozen: why, and the VM was paused instead
};
// What the background-snapshot fork runs around the hold (each may be empty).
struct BackgroundSnapshotSteps {
  // Once the VM's API answers, just before the freeze or pause (where the hold is timed from).
  std::function<void()> before_hold;
  // While the disks are held still, before the snapshot starts (the clones of the instance's
  // directory: its disks as the snapshot's RAM and device state will have them).
  std::function<Status()> while_held;
  // As soon as the hold ends (thawed, or running again), while guest RAM is still being written out.
  std::function<void(const SourceHold&)> released;
};
// A guest frozen for a capture thaws by itself this long after, if forkd never says so.
inline constexpr std::chrono::milliseconds kFreezeDeadline{60'000};
// The "source_pause": "background" snapshot (Capabilities().background_snapshot). The disks are held
// still: the guest agent behind `agent` freezes the guest's filesystems (GuestFreeze) and the VM runs
// on, or, where the guest cannot be frozen (no agent, an agent without freeze, a swap disk), the VM is
// paused. Then while_held, the plugin's background snapshot into `snapshot_dir` (the hypervisor
// captures device state and RAM in a stop of its own, or in the pause), the thaw or resume, and a wait
// until guest RAM is written. The VM runs afterwards on every path; the error is the first failure (a
// failed resume is added to it; a freeze that ended at its deadline before the capture is one).
// Returns the files the snapshot wrote into `snapshot_dir` (names). FailedPrecondition when `process`
// no longer runs.
Result<std::vector<std::string>> SnapshotRunningVmInBackground(const VmContext& context, const ProcessRecord& process,
                                                               const AgentAccess& agent,
                                                               const std::string& snapshot_dir,
                                                               const BackgroundSnapshotSteps& steps);
// Asks the VM to shut down through its API; kills it (SIGKILL) if it has not exited within the
// timeout (an API that does not answer counts against it). Ok when the process is already gone.
// A pid whose start time differs from the record's is another process: it is never signalled.
Status StopVm(const VmContext& context, const ProcessRecord& process);
// A connection to the guest agent behind `channel`, by `deadline`; nullopt over hybrid vsock when
// nothing listens (no agent). `peer` is set to name it in messages.
Result<std::optional<UniqueFd>> ConnectGuestAgent(const hypervisor::IdentityChannel& channel,
                                                  std::chrono::steady_clock::time_point deadline,
                                                  const std::string& who, std::string& peer);
enum class HandoffOutcome {
  kApplied,  // the guest acknowledged the identity
  kNoAgent,  // a hybrid-vsock channel where nothing listens on the agent's port: a guest without it
};
// Hands `handoff` to the guest agent behind `channel` (hypervisor/identity_handoff.h), all within
// `timeout`, and hangs up. A virtio-serial socket (QEMU) is waited for until it accepts; nobody
// answering on it is an error, since the port exists only for the agent. Over hybrid vsock a refused
// connection is kNoAgent: vsock serves other uses too, and a guest without the agent is not an
// error. `who` names the instance in errors.
Result<HandoffOutcome> HandOffGuestIdentity(const hypervisor::IdentityChannel& channel,
                                            const hypervisor::IdentityHandoff& handoff,
                                            std::chrono::milliseconds timeout, const std::string& who);
// Sets the clock of the guest behind `channel` to the host's (hypervisor::SetGuestClock), for a guest
// that keeps its identity but whose clock stopped while forkengine paused or restored it. kNoAgent as
// for HandOffGuestIdentity; an agent too old for it is Unsupported.
Result<HandoffOutcome> SetGuestClockThrough(const hypervisor::IdentityChannel& channel,
                                            std::chrono::milliseconds timeout, const std::string& who);
// True when `process` still runs (same pid and start time, not a zombie). A zombie that is forkd's
// child (a VM that ended on its own) is reaped here.
bool VmProcessAlive(const ProcessRecord& process);

}  // namespace fe::engine::vm
