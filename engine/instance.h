// An instance: one VM that forkengine manages, as recorded in its metadata file.
//
// Layout under the engine's data root (engine/instance_store.h):
//   <data_root>/instances/<id>/instance.json   this metadata (replaced atomically)
//   <data_root>/instances/<id>/                runtime files of the hypervisor process (log, sockets)
//   <storage volume named <id>>                the guest data (disks, memory, snapshot, config): the
//                                              storage backend's volume, whose path the backend owns
//
// States. Stopped (no process, boots from its config), Standby (no process, a snapshot in its guest
// data to restore from), Running (a hypervisor process). Creating is transitional and only ever seen
// on disk: an instance being imported or forked whose metadata was written first as an intent, so
// that a crash leaves something recovery can find and remove.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/status.h"
#include "engine/labels.h"
#include "engine/vm/process_record.h"
#include "hypervisor/plugin.h"

namespace fe::engine {

enum class InstanceState { kCreating, kStopped, kStandby, kRunning };

std::string_view InstanceStateName(InstanceState state);  // "Creating", "Stopped", ...
// Accepts the names above (exactly); InvalidArgument naming the text otherwise.
Result<InstanceState> ParseInstanceState(std::string_view text);
// A state a request may ask for (a fork's target_state, a create's state, a pool's member_state):
// Stopped, Standby or Running. Creating is the engine's own and is refused like an unknown name.
Result<InstanceState> ParseRequestedState(std::string_view text);

// A disk of another owner attached to the instance (outside its guest data). Forks of an instance
// with a writable one are refused: two VMs must never write one disk.
struct AttachedVolume {
  std::string path;
  bool read_only = true;
};

// A shared-memory fork's guest RAM (engine/shared_memory.cc): the memory file of another instance's
// snapshot, mapped privately. Recorded from the fork until its RAM is its own again (it stops, stands
// by or is deleted), so the engine knows across restarts which files must stay unwritten.
struct SharedMemory {
  std::string instance_id;  // whose snapshot the file is (the template); it is never restored meanwhile
  std::string file;         // absolute, in that instance's volume
  bool operator==(const SharedMemory&) const = default;
};

// An instance marked a template (at create or import): it never runs, so its files never change and
// its forks and replicas on other nodes start from the same bytes. Its file list (with the chunk
// checksums a replication sends) is kept beside its metadata (engine/template_files.cc).
struct TemplateMark {
  std::string content_hash;  // of the template's file list (snapshot/guest_files.h); a replica keeps its original's
  std::string replica_of;    // the original template's id (on another node); empty: this is the original
  bool operator==(const TemplateMark&) const = default;
};

// One link of an instance's ancestry: an instance it descends from, as that one was when the link
// was made. Kept in the descendant, so its chain stays whole after an ancestor is deleted.
struct Ancestor {
  std::string id;
  std::string name;       // an instance's name, or a snapshot's own name (not its record's)
  std::string forked_at;  // when the next one down the chain was made from it (RFC 3339 UTC)
  bool snapshot = false;  // a snapshot (s-...) rather than an instance: "kind" in JSON
  bool operator==(const Ancestor&) const = default;
};

inline constexpr size_t kMaxAncestors = 4096;

// What makes a record a snapshot rather than an instance (engine/snapshots.cc): an immutable copy of
// an instance's guest data at one moment, held by the storage backend beside it and sharing its
// blocks. It never runs; it is forked from, and its instance may be rolled back to it. It keeps the
// identity its instance had (leasing none of its own) and outlives its instance. Its record's name is
// its id; its own name is `name`, unique among its instance's snapshots.
struct SnapshotMark {
  std::string name;
  std::string instance_id;                           // whose snapshot it is (also its parent_id)
  std::string instance_name;                         // that instance's name when it was taken
  InstanceState taken_in = InstanceState::kStopped;  // the instance's state then: Running, Standby or Stopped
  bool operator==(const SnapshotMark&) const = default;
};

// When forkengine itself ends or parks an instance (engine/lifecycle_keeper.h), issue #23. The
// deadline is persisted, so a restart keeps it.
struct LifecyclePolicy {
  std::string expires_at;        // RFC 3339 UTC: deleted then (from ttl_s); empty: never
  int64_t idle_standby_s = 0;    // Running with almost no CPU used for this long: stood by; 0: never
  std::string stood_by_idle_at;  // when it was last stood by for idleness; empty: never
  bool operator==(const LifecyclePolicy&) const = default;
};

inline constexpr int64_t kMaxPolicySeconds = int64_t{10} * 366 * 24 * 3600;  // ten years

enum class MemoryMode { kPrivate, kShared };
std::string_view MemoryModeName(MemoryMode mode);  // "private", "shared"
// Accepts the names above; InvalidArgument naming the text otherwise.
Result<MemoryMode> ParseMemoryMode(std::string_view text);

struct Instance {
  std::string id;          // "i-" + 16 lower-case hex digits, never reused
  std::string name;        // DNS label, unique among instances
  std::string hypervisor;  // plugin kind: "cloud-hypervisor", "qemu", "firecracker"
  InstanceState state = InstanceState::kStopped;
  hypervisor::NetworkIdentity identity;
  std::string storage_backend;  // mechanism that holds the volume: "btrfs", "reflink", ...
  std::string volume;           // storage volume name (the id)
  std::string parent_id;        // empty unless forked
  std::string forked_at;        // RFC 3339 UTC with milliseconds; empty unless forked
  std::string created_at;
  std::string updated_at;
  int vcpus = 1;     // what the instance costs against a CPU budget (pools)
  std::string pool;  // the pool (engine/pools/pool.h) holding this ready member; empty when not a member
  std::vector<AttachedVolume> attached_volumes;
  std::optional<vm::ProcessRecord> process;  // set while Running
  // The guest's side of its identity (hypervisor/identity_handoff.h). A fork restored from a snapshot
  // wakes up with what the source's guest had; the engine then hands it `identity` over the channel.
  hypervisor::IdentityChannel identity_channel;  // from the plugin's PrepareFork; empty: none
  std::string guest_mac;                         // the MAC the guest last had configured; empty: identity.mac
  uint64_t identity_generation = 0;              // of the last identity handed to the guest (0: never)
  std::optional<SharedMemory> shared_memory;     // set while its RAM maps another instance's file
  std::optional<TemplateMark> template_mark;     // set for a template
  std::optional<SnapshotMark> snapshot_mark;     // set for a snapshot
  Labels labels;                                 // engine/labels.h
  LifecyclePolicy lifecycle;
  // Whom it descends from, the oldest first; the last is its parent (parent_id). Empty unless forked.
  std::vector<Ancestor> ancestors;
};

// The MAC the instance's guest is configured with now (guest_mac, or identity.mac when empty).
inline const std::string& GuestMac(const Instance& instance) {
  return instance.guest_mac.empty() ? instance.identity.mac : instance.guest_mac;
}

// "virtio-serial", "hybrid-vsock" ("none" for kNone), as instance.json spells them.
std::string_view IdentityChannelKindName(hypervisor::IdentityChannel::Kind kind);

nlohmann::json InstanceToJson(const Instance& instance);
// `origin` names the file in errors ("…/instance.json: field 'state': …").
Result<Instance> InstanceFromJson(const nlohmann::json& json, std::string_view origin);

// DNS-label names: 1..63 of [a-z0-9-], starting and ending with a letter or digit.
Status ValidateInstanceName(std::string_view name);

inline constexpr int kMaxVcpus = 4096;

// What every stored instance satisfies: the loader (InstanceFromJson) refuses anything else, and the
// store (engine/instance_store.h) refuses to write it, so what the API accepted is what a restart
// reads back. InvalidArgument naming the field.
Status ValidateInstance(const Instance& instance);

// A fresh instance id ("i-" + 16 hex digits from a CSPRNG), or snapshot id ("s-" + 16).
std::string NewInstanceId();
std::string NewSnapshotId();

}  // namespace fe::engine
