// The results of `forkbench --compare` and how they are shown: one table per filesystem and
// dataset, and the same numbers as JSON for the README and for tracking over time.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace fe::bench {

enum class MethodKind { kOurs, kCpReflink, kCpSparse, kFloor };

struct MethodResult {
  MethodKind kind = MethodKind::kOurs;
  std::string name;     // row label, e.g. "ours io_uring durable"
  std::string command;  // what exactly ran, e.g. the cp command line or the CloneOptions
  std::vector<double> runs_ms;
  std::string note;     // what the run actually did: mechanism, io engine, shared data
  std::string skipped;  // why the method was not run, if it was not
  std::string error;    // the first failure, if any
};

struct ComparisonTable {
  std::string filesystem;  // probed name: "xfs", "btrfs", "ext4"
  std::string filesystem_description;
  std::string dataset;
  std::string dataset_description;
  uint64_t files = 0;
  uint64_t directories = 0;
  uint64_t logical_bytes = 0;
  uint64_t allocated_bytes = 0;
  int repetitions = 0;
  double wall_seconds = 0;  // the whole measurement, including verification and clean-up
  std::vector<MethodResult> methods;
};

std::optional<double> Median(std::vector<double> values);
// Nearest-rank 90th percentile: with 5 runs it is the slowest one.
std::optional<double> Percentile90(std::vector<double> values);

std::string FormatComparisonTable(const ComparisonTable& table);
nlohmann::json ComparisonToJson(const ComparisonTable& table);

}  // namespace fe::bench
