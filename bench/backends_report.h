// The results of `forkbench --backends` and how they are shown: one table per filesystem and input,
// the btrfs crossover sweep (snapshot vs reflink vs auto by tree size), and the targets the README
// quotes, each with the numbers that decide it.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace fe::bench {

// kBackend: one storage backend forced; kAuto: what OpenBackend(kAuto) picked; kTool: a command a
// user would run instead (timed as a whole process), one of them the table's baseline.
enum class Role { kBackend, kAuto, kTool };

struct BackendRow {
  std::string name;  // row label
  std::string slug;  // stable key: "btrfs-snapshot", "reflink", "copy", "auto", "btrfs-cli", "cp"
  Role role = Role::kBackend;
  bool baseline = false;   // the cp row the ratio column divides by
  bool also_auto = false;  // auto opened this very backend (type and mode), so it runs once
  std::string command;     // what exactly ran
  std::vector<double> runs_ms;
  std::string note;   // what the verified warm-up run did: mechanism, shared data
  std::string error;  // the first failure, if any
};

struct BackendTable {
  std::string filesystem;  // "btrfs", "xfs", "ext4-loop", ...
  std::string filesystem_description;
  std::string input;  // "guest-dir", "small-files", "tree-100", ...
  std::string description;
  uint64_t files = 0;
  uint64_t entries = 0;  // everything below the volume root, as CountEntries counts it
  std::vector<BackendRow> rows;
};

// One tree size of the btrfs sweep (the 10,000-file point is the small-files table).
struct SweepPoint {
  uint64_t files = 0;
  const BackendTable* table = nullptr;
};

std::optional<double> RowMedian(const BackendTable& table, const std::string& slug);

std::string FormatBackendTable(const BackendTable& table);
// The sweep table, the measured crossover and what it means for kBtrfsSnapshotCrossoverEntries.
std::string FormatSweep(const std::vector<SweepPoint>& sweep);
// One line per README target: holds or FAILS, and the numbers behind it.
std::string FormatTargets(const std::vector<BackendTable>& tables, const std::vector<SweepPoint>& sweep);

nlohmann::json BackendsToJson(const std::vector<BackendTable>& tables, const std::vector<SweepPoint>& sweep);

}  // namespace fe::bench
