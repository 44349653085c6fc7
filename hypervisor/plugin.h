// Hypervisor plugins: what makes a cloned guest directory a VM of its own, and how to drive one.
//
// Vocabulary. An *instance directory* holds one VM's files (see snapshot/guest_directory.h). A *fork*
// is a clone of a source instance directory that must run beside the source: every path in its
// configuration that points into the source directory must point into the fork's, and its network
// identity (TAP device, MAC, IP, vsock CID) must be its own.
//
// A plugin has two halves (style: pure rewrite, effectful control):
//  - PrepareFork is *pure file work* on the already-cloned fork directory: it rewrites the
//    hypervisor's config/snapshot files (typed fields only, paths only at a path-component boundary,
//    each file written to a temporary file and renamed) and says how the fork is to be restored. It
//    needs no hypervisor binary and is tested on real-format files.
//  - LaunchCommand and Connect are *effectful*: the argv that starts the hypervisor for an instance
//    (booting, or waiting for a restore), and a controller speaking the hypervisor's own API (REST
//    over a Unix socket, QMP, Firecracker's API) to pause, snapshot, resume, restore and shut down.
//
// Callers branch on Capabilities(), never on Kind(). An operation a hypervisor cannot do returns
// ErrorCode::kUnsupported with a message naming the hypervisor and the operation. Kinds without a
// plugin are refused by the registry (hypervisor/registry/registry.h) with the same code.
//
// Threads: plugins are stateless and may be used from any thread; a VmController belongs to one
// thread at a time (hypervisor APIs accept one client per socket).
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"

namespace fe::hypervisor {

// One instance's network identity, allocated by the engine (engine/network/network_allocator.h).
struct NetworkIdentity {
  std::string tap_device;  // host TAP name, at most 15 bytes
  std::string mac;         // "02:..." locally administered unicast, lower-case hex
  std::string ipv4;        // guest address, dotted quad
  int prefix_length = 24;  // of the subnet
  std::string gateway;     // dotted quad
  uint32_t vsock_cid = 0;  // >= 3
};

struct ForkSpec {
  std::string source_dir;  // absolute, the source instance directory (never written)
  std::string target_dir;  // absolute, the fork's directory: already a complete clone of source_dir
  NetworkIdentity source_identity;
  NetworkIdentity target_identity;
  bool from_snapshot = false;  // the fork will be restored from the snapshot in its directory
  // Directories no path in the fork's configs may point into, except source_dir and target_dir (the
  // data root and the storage root: other instances' volumes and forkd's own state).
  std::vector<std::string> guarded_dirs;
  // Set when the fork maps another instance's snapshot memory (MemorySource): its clone of the
  // snapshot's own memory file is not needed, and may be missing.
  bool shared_memory = false;
  // Set for a copy that keeps its instance's identity rather than taking one of its own: a snapshot of
  // the instance, or the instance rolled back to one. The checks that a fork's TAP, MAC and vsock CID
  // differ from its source's do not apply (the two never run at once: a snapshot never runs).
  bool keeps_identity = false;
};

// Where the guest's identity agent (hypervisor/forkagent) listens, as the host reaches it: the host
// side of hypervisor/identity_handoff.h. Paths point into the fork's own directory.
struct IdentityChannel {
  enum class Kind {
    kNone,                // the VM has no channel: its guest cannot be handed an identity
    kVirtioSerialSocket,  // QEMU: the Unix socket QEMU serves for the virtio-serial port
                          // kIdentitySerialPortName; connect and speak the protocol directly
    kHybridVsock,         // Cloud Hypervisor / Firecracker: the vsock Unix socket; "CONNECT <port>"
                          // first (ConnectHybridVsock)
  };
  Kind kind = Kind::kNone;
  std::string path;   // absolute Unix socket path
  uint32_t port = 0;  // kHybridVsock: the guest's vsock port (kIdentityVsockPort)
  bool empty() const { return kind == Kind::kNone; }
  bool operator==(const IdentityChannel&) const = default;
};

// Where a VM's guest RAM comes from when it is not its own: a shared-memory fork maps the memory file
// of its template's snapshot privately (copy-on-write), so the pages it has not written are one copy in
// the host's page cache for every VM mapping the file, and nothing it does reaches the file. The engine
// keeps that file unwritten while anything maps it (engine/shared_memory.cc).
struct MemorySource {
  std::string shared_file;  // absolute; empty: the VM's own memory, as its configuration says
  bool empty() const { return shared_file.empty(); }
  bool operator==(const MemorySource&) const = default;
};

// A VM's guest RAM kept in a shared file (Plugin::RunningMemoryFile).
struct MemoryFile {
  std::string path;    // absolute, beneath the instance directory
  uint64_t bytes = 0;  // the guest's RAM size
};

// How a prepared fork is brought up.
struct RestorePlan {
  std::string snapshot_dir;  // absolute; empty: boot from the config
  // Firecracker-style restores load a binary state that embeds the source's absolute paths: during
  // the load, source_dir must resolve to target_dir (see the plugin for the lock that guards it).
  bool needs_source_path_alias = false;
  NetworkIdentity identity;  // to apply host-side (TAP) and hand to the guest after resume
  // Where the fork's guest agent is reached once the fork runs; empty when the VM has none.
  IdentityChannel identity_channel;
};

struct PreparedFork {
  std::vector<std::string> rewritten_files;  // relative to target_dir
  RestorePlan restore;
};

enum class LaunchMode {
  kBoot,     // start the VM from its configuration
  kRestore,  // start the hypervisor ready to restore the snapshot in the instance directory
};

struct LaunchCommand {
  std::vector<std::string> argv;
  std::string api_socket;    // where Connect() reaches the started process
  std::string install_hint;  // how to install argv[0] when this host cannot run it
};

struct PluginCapabilities {
  bool fork_stopped = false;              // PrepareFork for a stopped instance (fresh boot)
  bool fork_standby = false;              // PrepareFork for a snapshot (restore beside the source)
  bool snapshot_keeps_vsock_cid = false;  // the guest holds its CID in memory across a restore
  bool restore_needs_path_alias = false;  // see RestorePlan::needs_source_path_alias
  // Snapshot() of a VM whose guest RAM is a shared file (see Plugin::CanLiveFork) writes device state
  // only, and Resume() afterwards continues the same process: a running source can be forked by
  // pausing it, snapshotting, cloning its directory (the RAM file with it) and resuming it at once.
  bool live_snapshot = false;
  // Launch/Restore with a MemorySource: a restore can map a snapshot's memory file privately instead
  // of loading RAM into memory of its own (see Plugin::SnapshotMemoryFile). A snapshot of a VM so
  // restored holds its RAM in full, in files of its own.
  bool shared_memory = false;
  // StartBackgroundSnapshot/FinishBackgroundSnapshot: a running VM whose guest RAM is anonymous is
  // saved while it runs (the "source_pause": "background" fork; QEMU's background-snapshot).
  bool background_snapshot = false;
};

// The capture of a background snapshot.
struct BackgroundCapture {
  // How long the hypervisor stopped the guest's vCPUs to capture device state and write-protect RAM,
  // as it measured the stop; nullopt when it reported none (the VM was paused already, or it does not say).
  std::optional<std::chrono::microseconds> vm_stopped;
};

// Control of one live VM through the hypervisor's API.
class VmController {
 public:
  virtual ~VmController() = default;
  virtual Status Pause() = 0;
  virtual Status Resume() = 0;
  // Writes a snapshot (memory + device state + config) of the paused VM into `snapshot_dir`. The files
  // need not be durable yet: the caller syncs their filesystem when it needs them to be (a standby
  // before recording it; a live fork's clones with the forks).
  virtual Status Snapshot(const std::string& snapshot_dir) = 0;
  // Loads the snapshot in `snapshot_dir` into a hypervisor started with LaunchMode::kRestore (and the
  // same `memory`): with memory.shared_file, guest RAM is that file mapped privately, not the
  // snapshot's own memory.
  virtual Status Restore(const std::string& snapshot_dir, const NetworkIdentity& identity,
                         const MemorySource& memory) = 0;
  virtual Status Shutdown() = 0;
  // A snapshot of the VM into `snapshot_dir` that the guest runs through
  // (Capabilities().background_snapshot): device state and guest RAM as the hypervisor captured them,
  // RAM written out while the VM runs on. A paused VM is captured as it is, before it runs again; a
  // running one after the hypervisor's preparation, in a stop of its own (BackgroundCapture). Returns
  // once the capture is made and the VM runs again (also if it was paused before);
  // FinishBackgroundSnapshot waits for the whole snapshot and names the files it wrote into
  // `snapshot_dir` (the caller copies them into other directories). Unsupported when guest RAM cannot
  // be write-protected (a shared file: use Snapshot on the live path).
  virtual Result<BackgroundCapture> StartBackgroundSnapshot(const std::string& /*snapshot_dir*/) {
    return Status::Unsupported("this hypervisor cannot snapshot a VM while it runs");
  }
  virtual Result<std::vector<std::string>> FinishBackgroundSnapshot() {
    return Status::Unsupported("this hypervisor cannot snapshot a VM while it runs");
  }
};

class Plugin {
 public:
  virtual ~Plugin() = default;
  // Stable kind: "cloud-hypervisor", "qemu", "firecracker".
  virtual std::string_view Kind() const = 0;
  virtual PluginCapabilities Capabilities() const = 0;

  // Whether `dir` is a guest directory of this hypervisor that can run (`standby`: be restored from
  // its snapshot; else booted): its required files are present and parse. Reads only, beneath `dir`
  // (base/confined_dir.h). The error names the file and what is wrong. An import asks this before
  // anything is written.
  virtual Status CheckGuestDirectory(const std::string& dir, bool standby) const = 0;

  // Rewrites the fork directory's hypervisor files for the fork. A rewrite the plugin refuses (a
  // field it cannot give the fork) fails before any file is written, naming the file and field; a
  // write that fails may leave a file of target_dir half-written: the caller made target_dir for
  // this fork and discards it whole on any failure.
  virtual Result<PreparedFork> PrepareFork(const ForkSpec& spec) const = 0;

  // True when the instance in `instance_dir` keeps its guest RAM in a shared file inside the directory,
  // so that (with Capabilities().live_snapshot) a snapshot leaves RAM in place and a clone of the
  // paused VM's directory holds a consistent copy of it. False when it cannot tell (unreadable config).
  virtual bool CanLiveFork(const std::string& /*instance_dir*/) const { return false; }

  // The shared file holding the guest RAM of the VM of `instance_dir` (what CanLiveFork relies on): a
  // live fork writes it back while the VM still runs, so the pause leaves less to write
  // (engine/vm/ram_preflush.h), and a boot lays it out first (engine/vm/ram_file.h). A path beneath
  // `instance_dir`, and the guest's RAM size. Unsupported when RAM is no such file.
  virtual Result<MemoryFile> RunningMemoryFile(const std::string& /*instance_dir*/) const {
    return Status::Unsupported("hypervisor '" + std::string(Kind()) + "' keeps no guest RAM in a shared file");
  }

  // The file holding the guest RAM of the snapshot in `instance_dir` (Standby), which forks restored
  // from copies of that snapshot may map instead of a memory file of their own (MemorySource). A path
  // beneath `instance_dir`; whether it exists is the caller's to check. Unsupported, saying why, when
  // the hypervisor cannot share memory or this snapshot keeps its RAM elsewhere.
  virtual Result<std::string> SnapshotMemoryFile(const std::string& /*instance_dir*/) const {
    return Status::Unsupported("hypervisor '" + std::string(Kind()) + "' cannot map a fork's memory from its template");
  }

  // `memory`: LaunchMode::kRestore of a shared-memory fork (Capabilities().shared_memory).
  virtual Result<LaunchCommand> Launch(const std::string& instance_dir, LaunchMode mode,
                                       const MemorySource& memory) const = 0;
  virtual Result<std::unique_ptr<VmController>> Connect(const std::string& api_socket,
                                                        std::chrono::milliseconds timeout) const = 0;
};

}  // namespace fe::hypervisor
