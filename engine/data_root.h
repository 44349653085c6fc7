// The data root's layout: every path forkd keeps under it, named once (the reference design's
// paths.go does the same), so the layout is one file to read and to change.
//
//   <root>/                        mode 0700
//   <root>/instances/<id>/         an instance's metadata (instance.json) and its hypervisor's runtime
//                                  files (engine/instance_store.h)
//   <root>/volumes/                the storage backend's root unless configured elsewhere; the loop
//                                  pool is mounted here when the root cannot reflink (storage/loop)
//   <root>/pool.img                the loop pool's sparse image
//   <root>/network/                the network leases and their lock (engine/network)
//   <root>/release.journal         pool releases not yet checkpointed (engine/release_journal.h)
//   <root>/pools/<name>.json       pool specs (engine/pools/pool_store.h)
//   <root>/groups/<id>.json        fan-outs not yet answered (engine/fan_out_record.h)
//   <root>/requests/<key>.json     Idempotency-Key records (engine/forkd/idempotency_store.h)
//   <root>/events.seq              the last event sequence number reserved (engine/event_log.h)
//   <root>/.reserve                room kept for the writes that free space on a full disk
//                                  (base/space_reserve.h)
//   <root>/quarantine/<id>/        instance directories whose metadata could not be read, moved aside
//                                  by recovery with their volume and lease kept (engine/recovery.cc)
//   <root>/uploads/<id>/           templates arriving from other nodes, staged until they are imported
//                                  (engine/replication/upload_store.h)
//   <root>/cluster-node-id         which node of a cluster this data root is: its node name is claimed
//                                  with it (engine/cluster/node_state.h)
#pragma once

#include <string>

namespace fe::engine {

class DataRoot {
 public:
  explicit DataRoot(std::string path) : path_(std::move(path)) {}

  const std::string& path() const { return path_; }
  std::string Instances() const { return Under("instances"); }
  std::string Volumes() const { return Under("volumes"); }
  std::string LoopPoolImage() const { return Under("pool.img"); }
  std::string Network() const { return Under("network"); }
  std::string ReleaseJournal() const { return Under("release.journal"); }
  std::string Pools() const { return Under("pools"); }
  std::string FanOuts() const { return Under("groups"); }
  std::string Requests() const { return Under("requests"); }
  std::string Quarantine() const { return Under("quarantine"); }
  std::string EventSequence() const { return Under("events.seq"); }
  std::string SpaceReserve() const { return Under(".reserve"); }
  std::string ClusterNodeId() const { return Under("cluster-node-id"); }
  std::string Uploads() const { return Under("uploads"); }

 private:
  std::string Under(const char* name) const { return path_ + "/" + name; }
  std::string path_;
};

}  // namespace fe::engine
