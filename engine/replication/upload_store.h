// Uploads: a template's files arriving from another node, chunk by chunk, into a staging directory
// beneath the data root, before they are imported as a replica (issue #22).
//
//   <data root>/uploads/<upload id>/upload.json   what is being sent: the source template (its id,
//                                                 hypervisor, state, vCPUs, content hash, the directory
//                                                 its configs name) and its file list with the
//                                                 SHA-256 of every chunk (snapshot/guest_files.h)
//   <data root>/uploads/<upload id>/files/        the tree, made at Begin: directories, symlinks,
//                                                 sparse files of their full size
//   <data root>/uploads/<upload id>/received      the chunks written, one "<offset> <path>" a line
//
// Nothing a sender says is trusted: the list is checked before any file is made (every path beneath
// files/, every link contained), every file is opened beneath files/ without following links, and a
// chunk is written only when its bytes hash to what the list says for that path and offset. A
// crash or a lost connection loses no chunk already acknowledged that reached the disk: Open reads
// `received` back and re-checks each chunk it names against its bytes, so a sender asks Get what
// is missing and resumes. An upload untouched for `stale_after` is removed (at Open and at each
// Begin), so an abandoned one does not keep its space.
//
// Threads: every method may be called concurrently.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/clock.h"
#include "base/status.h"
#include "snapshot/guest_files.h"

namespace fe::engine::replication {

// The template being sent, as its node describes it (GET /v1/instances/{id}/files).
struct SourceTemplate {
  std::string id;  // on its node
  std::string name;
  std::string hypervisor;
  std::string state;  // "Standby" or "Stopped"
  int vcpus = 1;
  std::string dir;           // the absolute directory its configs name (its volume there)
  std::string content_hash;  // its template content hash (the original's, for a replica)
  std::string original_id;   // the original template's id (its own id unless it is a replica itself)
};

struct UploadStatus {
  std::string id;
  SourceTemplate source;
  size_t chunks = 0;
  size_t received_chunks = 0;
  uint64_t bytes = 0;
  uint64_t received_bytes = 0;
  std::vector<snapshot::FileChunk> missing;  // with their paths in missing_paths, index for index
  std::vector<std::string> missing_paths;
  bool complete() const { return received_chunks == chunks; }
};

// What a complete upload is imported from.
struct StagedTemplate {
  std::string files_dir;  // the staged tree
  SourceTemplate source;
};

class UploadStore {
 public:
  static constexpr size_t kMaxUploads = 16;

  // Reads back the uploads under `root` (made when missing) and removes the stale ones.
  static Result<std::unique_ptr<UploadStore>> Open(std::string root, const Clock& clock,
                                                   std::chrono::seconds stale_after = std::chrono::hours(1));

  // Starts an upload from a source's description (the JSON GET /v1/instances/{id}/files answers).
  // InvalidArgument naming the field; NoSpace when the filesystem has less free than the data;
  // Busy at kMaxUploads.
  Result<UploadStatus> Begin(const nlohmann::json& description);
  Result<UploadStatus> Get(const std::string& id) const;
  // Writes the chunk of `path` at `offset`. NotFound for an unknown upload; InvalidArgument for a
  // chunk the list does not have; InvalidContent when the bytes do not match its checksum.
  Result<UploadStatus> PutChunk(const std::string& id, const std::string& path, uint64_t offset, std::string_view data);
  // Makes the complete upload's files durable and says where they are; FailedPrecondition while
  // chunks are missing (naming how many).
  Result<StagedTemplate> Staged(const std::string& id) const;
  // Removes the upload and its files; Ok when it is absent.
  Status Remove(const std::string& id);

 private:
  struct Upload;
  UploadStore(std::string root, const Clock& clock, std::chrono::seconds stale_after)
      : root_(std::move(root)), clock_(clock), stale_after_(stale_after) {}
  Result<std::shared_ptr<Upload>> Find(const std::string& id) const;
  Status Load(const std::string& id);
  void SweepStale();
  std::string DirOf(const std::string& id) const { return root_ + "/" + id; }
  Status RemoveDir(const std::string& id) const;

  std::string root_;
  const Clock& clock_;
  std::chrono::seconds stale_after_;
  mutable std::mutex mutex_;
  std::map<std::string, std::shared_ptr<Upload>> uploads_;
};

nlohmann::json UploadStatusToJson(const UploadStatus& status);
// The description a source node answers for its template (GET /v1/instances/{id}/files).
nlohmann::json DescribeTemplate(const SourceTemplate& source, const snapshot::GuestFileList& files);

}  // namespace fe::engine::replication
