// The network leases made and ended since network.json was last written, one JSON line each.
//
// A fork used to rewrite the whole network.json for its lease (O(instances) bytes) and fsync it and
// its directory: two log forces and the only per-fork cost that grew with the number of instances.
// Now a lease or a release is one appended line: inside a DeferredSync scope (a fork, a create) it is
// made durable by the scope's syncfs, together with the rest of what the instance needs, before its
// final metadata; outside one, by an fdatasync of its own. network.json is rewritten only when the
// journal has grown (NetworkAllocator compacts it), and at a start that finds records in it.
//
// File: the first line {"journal": G} names the generation; network.json records the generation of
// the journal that applies on top of it, so a journal a crash left behind after a compaction (older
// generation, already folded into network.json) is ignored. Then one record per line:
//   {"lease": "<instance id>", "ipv4": ..., "mac": ..., "tap_device": ..., "vsock_cid": ..., "next_host": N}
//   {"release": "<instance id>"}
// Appends are serialised by the caller and every sync covers all earlier lines, so after a crash the
// lines before the last sync are whole; reading stops at the first line that is not a whole JSON
// object ended by a newline (a torn tail, never acknowledged), and Open cuts the file there.
//
// Threads: not thread-safe; NetworkAllocator calls it under its mutex.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/status.h"
#include "base/unique_fd.h"

namespace fe::engine::network {

class LeaseJournal {
 public:
  struct Contents {
    uint64_t generation = 0;                      // 0: there was no journal
    std::vector<nlohmann::ordered_json> records;  // whole lines after the header, in order
  };

  // Opens (creating an empty journal of generation 0 when missing) and reads `path`; cuts a torn tail.
  static Result<LeaseJournal> Open(const std::string& path, Contents& contents);
  // The journal's text as Open reads it, without changing anything; `whole_bytes` is where the whole
  // lines end. InvalidArgument naming `path` when the header is whole but not a journal's.
  static Result<Contents> Parse(const std::string& text, const std::string& path, size_t& whole_bytes);

  // Appends one record as a line. Durable before it returns unless a DeferredSync scope is current
  // (base/deferred_sync.h), which then notes the journal's directory. On failure the file is cut back
  // to its previous length, so a failed append never hides the lines after it.
  Status Append(const nlohmann::ordered_json& record);

  // Empties the journal and makes it generation `generation`, durably (after network.json recorded
  // it). Once it failed, Append must not be called before a Restart succeeded.
  Status Restart(uint64_t generation);

  size_t records() const { return records_; }  // lines after the header

 private:
  LeaseJournal(std::string path, std::string dir, UniqueFd fd, uint64_t size, size_t records)
      : path_(std::move(path)), dir_(std::move(dir)), fd_(std::move(fd)), size_(size), records_(records) {}

  std::string path_, dir_;
  UniqueFd fd_;
  uint64_t size_ = 0;  // bytes of whole lines
  size_t records_ = 0;
};

}  // namespace fe::engine::network
