// Driving one live QEMU through QMP (the effectful half of the plugin).
//
//   Pause    = stop
//   Resume   = cont
//   Snapshot = stop; x-ignore-shared when guest RAM is a shared file; open <dir>/vmstate.partial-N and
//              pass it to QEMU (getfd), migrate to "fd:<name>" (QEMU writes the file itself: no shell to
//              spawn during the pause); poll query-migrate until completed; rename to <dir>/vmstate;
//              write qemu-snapshot.json. Not fsynced: making a snapshot durable is the caller's (the
//              engine syncs the volume's filesystem once, plugin.h). The VM stays stopped
//              ("postmigrate"); Resume continues it.
//   Restore  = (QEMU started with `-incoming defer`, LaunchMode::kRestore) the same capability as the
//              snapshot; migrate-incoming "exec:cat <dir>/vmstate"; poll query-migrate until completed;
//              cont. QEMU exits when the state does not load; that is reported as an error.
//              A shared-memory fork (MemorySource) was launched with its template's memory_file mapped
//              share=off: the state must be a device-state-only one (x-ignore-shared), so no page is
//              loaded and guest RAM is the template's, copy-on-write. A snapshot of such a VM holds
//              its RAM in full in the stream (its RAM is not a shared file), a file of its own.
//   Shutdown = quit, then wait until QEMU closes the connection.
//   StartBackgroundSnapshot = (guest RAM anonymous) capability background-snapshot on, migrate "fd:" to
//              <dir>/vmstate.partial-N; QEMU prepares (reads every page of guest RAM, so its page
//              tables are populated: ~1 s per GiB on this machine, the "setup-time" of query-migrate),
//              stops the VM, saves its device state, write-protects guest RAM (userfaultfd) and starts
//              the VM again (~3 ms "downtime"), then writes RAM as it was at that moment while the
//              guest runs; returns at the RESUME event that ends the capture (QEMU 7.2 starts a VM that
//              was paused before too, which is how a caller's pause for its disk clones ends), with
//              the stop between the STOP and RESUME events' timestamps when the VM was running.
//   FinishBackgroundSnapshot = poll query-migrate until completed, rename to <dir>/vmstate, write
//              qemu-snapshot.json, capability off again. Snapshot and Restore turn it off too.
//
// Saved device state wins over the command line: after a restore the virtio-net MAC (and the guest's
// IP configuration) are still the source's, and Restore cannot change them; the guest applies the
// RestorePlan's identity itself. The vsock device resets its transport on load and the guest re-reads
// the CID, so a fork restored with its own guest-cid uses it.
//
// qemu-snapshot.json: {"format": "qemu-migration", "state_file": "vmstate", "ignore_shared_memory":
// bool, "state_bytes": N, "qemu_version": "7.2.22"}.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/unique_fd.h"
#include "hypervisor/plugin.h"
#include "hypervisor/qemu/qemu_config.h"
#include "hypervisor/qemu/qmp_client.h"

namespace fe::hypervisor::qemu {

// A snapshot directory's qemu-snapshot.json.
struct SnapshotInfo {
  std::string state_file = kStateFile;
  bool ignore_shared_memory = false;  // guest RAM is not in the stream: it stayed in the memory_file
};
// InvalidArgument naming the file and field; NotFound when it is missing.
Result<SnapshotInfo> ReadSnapshotInfo(const std::string& snapshot_dir);

struct ControllerTimeouts {
  std::chrono::milliseconds command{30000};     // each QMP reply
  std::chrono::milliseconds migration{600000};  // a whole save or load
};

class QemuController final : public VmController {
 public:
  explicit QemuController(QmpClient qmp, ControllerTimeouts timeouts = {})
      : qmp_(std::move(qmp)), timeouts_(timeouts) {}

  Status Pause() override;
  Status Resume() override;
  Status Snapshot(const std::string& snapshot_dir) override;
  Status Restore(const std::string& snapshot_dir, const NetworkIdentity& identity, const MemorySource& memory) override;
  Status Shutdown() override;
  Result<BackgroundCapture> StartBackgroundSnapshot(const std::string& snapshot_dir) override;
  Result<std::vector<std::string>> FinishBackgroundSnapshot() override;

  // query-status: "running", "paused", "inmigrate", "postmigrate", "prelaunch", ...
  Result<std::string> RunState();
  QmpClient& qmp() { return qmp_; }

 private:
  // A migration stream QEMU is writing into <snapshot_dir>/vmstate.partial-N.
  struct StreamFile {
    std::string snapshot_dir;
    std::string partial;
    UniqueFd fd;
  };

  Result<bool> HasSharedMemory();
  Status SetCapabilities(bool ignore_shared, bool background);
  // Opens the partial file, passes it to QEMU (getfd) and starts `migrate` into it.
  Result<StreamFile> StartMigrationToFile(const std::string& snapshot_dir, const std::string& what);
  // Waits for the migration, renames the stream to vmstate and writes qemu-snapshot.json; on failure
  // the partial file is removed.
  Status FinishSnapshot(StreamFile stream, bool ignore_shared, const std::string& what);
  // Cancels a background snapshot that could not start, removes its file; returns `why`.
  Status AbandonBackgroundSnapshot(Status why);
  // Polls query-migrate until "completed"; "failed"/"cancelled" and the deadline are errors.
  Status WaitForMigration(const std::string& what);

  QmpClient qmp_;
  ControllerTimeouts timeouts_;
  std::optional<StreamFile> background_;  // between Start- and FinishBackgroundSnapshot
};

Result<std::unique_ptr<VmController>> ConnectController(const std::string& api_socket,
                                                        std::chrono::milliseconds timeout,
                                                        ControllerTimeouts timeouts = {});

}  // namespace fe::hypervisor::qemu
