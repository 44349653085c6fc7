// The inputs every measurement clones, generated once per scratch filesystem with a fixed seed so
// runs are comparable across filesystems and machines.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "base/status.h"
#include "bench/tree_facts.h"

namespace fe::bench {

struct Dataset {
  std::string name;         // "guest-dir", "small-files"
  std::string description;  // one line for the table header
  std::string path;         // absolute path of the source directory
  TreeListing listing;
};

// The sizes of a guest directory's disk and memory; the defaults are dataset (a).
struct GuestShape {
  uint64_t disk_bytes = 10ull << 30;        // apparent size of the sparse disk.raw
  uint64_t disk_data_bytes = 200ull << 20;  // written in scattered 4 MiB chunks
  uint64_t memory_bytes = 1ull << 30;       // memory.bin, fully written
};

// (a) What a paused microVM leaves behind: a 10 GiB sparse disk.raw with 50 scattered 4 MiB data
// chunks, a fully written 1 GiB memory.bin, cloud-hypervisor style config.json and state.json, and
// a few small runtime files.
Status GenerateGuestDir(const std::string& path);

// (b) Metadata-bound: 10,000 files of 4 KiB in 100 directories.
Status GenerateSmallFiles(const std::string& path);

// The same content written into an existing, empty directory (a backend volume, say), in `shape`.
Status FillGuestDir(const std::string& path, const GuestShape& shape = {});
// `files` files of 4 KiB, 100 per directory d000, d001, ...; FillSmallTree(path, 10000) writes
// exactly what GenerateSmallFiles does.
Status FillSmallTree(const std::string& path, int files);

// Generates both datasets in the new directory `parent` and syncs the filesystem, so the first
// FICLONE does not pay for writeback of freshly written data.
Result<std::vector<Dataset>> GenerateDatasets(const std::string& parent);

// syncfs() on the filesystem holding `path`.
Status SyncFilesystem(const std::string& path);

}  // namespace fe::bench
