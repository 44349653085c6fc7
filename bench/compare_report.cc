#include "bench/compare_report.h"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace fe::bench {
namespace {

std::optional<double> MedianOf(const ComparisonTable& table, MethodKind kind) {
  for (const MethodResult& method : table.methods) {
    if (method.kind == kind && method.error.empty()) return Median(method.runs_ms);
  }
  return std::nullopt;
}

std::string Milliseconds(std::optional<double> ms) { return ms ? fmt::format("{:.2f}", *ms) : "-"; }

std::string Ratio(std::optional<double> numerator, std::optional<double> denominator) {
  if (!numerator || !denominator || *denominator <= 0) return "-";
  return fmt::format("{:.2f}x", *numerator / *denominator);
}

std::string GiB(uint64_t bytes) { return fmt::format("{:.2f} GiB", bytes / double(1ULL << 30)); }

}  // namespace

std::optional<double> Median(std::vector<double> values) {
  if (values.empty()) return std::nullopt;
  std::sort(values.begin(), values.end());
  size_t middle = values.size() / 2;
  return values.size() % 2 ? values[middle] : (values[middle - 1] + values[middle]) / 2;
}

std::optional<double> Percentile90(std::vector<double> values) {
  if (values.empty()) return std::nullopt;
  std::sort(values.begin(), values.end());
  size_t rank = static_cast<size_t>(std::ceil(0.9 * values.size()));
  return values[std::max<size_t>(rank, 1) - 1];
}

std::string FormatComparisonTable(const ComparisonTable& table) {
  std::optional<double> floor = MedianOf(table, MethodKind::kFloor);
  std::optional<double> cp_reflink = MedianOf(table, MethodKind::kCpReflink);
  std::optional<double> cp_sparse = MedianOf(table, MethodKind::kCpSparse);

  std::string out = fmt::format("\n=== {} / {}: {}\n", table.filesystem, table.dataset, table.dataset_description);
  out += fmt::format("    {} files, {} director{}, {} logical, {} allocated\n", table.files, table.directories,
                     table.directories == 1 ? "y" : "ies", GiB(table.logical_bytes), GiB(table.allocated_bytes));
  out += fmt::format("    {} timed runs per method after one verified warm-up run, interleaved ({:.0f} s)\n\n",
                     table.repetitions, table.wall_seconds);
  out += fmt::format("{:<26} {:>10} {:>10} {:>11} {:>16} {:>15}  {}\n", "method", "median ms", "p90 ms", "ours/floor",
                     "cp-reflink/ours", "cp-sparse/ours", "what it did");
  for (const MethodResult& method : table.methods) {
    if (!method.skipped.empty()) {
      out += fmt::format("{:<26} {:>10} {:>10} {:>11} {:>16} {:>15}  skipped: {}\n", method.name, "-", "-", "", "", "",
                         method.skipped);
      continue;
    }
    if (!method.error.empty()) {
      out += fmt::format("{:<26} {:>10} {:>10} {:>11} {:>16} {:>15}  FAILED: {}\n", method.name, "-", "-", "", "", "",
                         method.error);
      continue;
    }
    std::optional<double> median = Median(method.runs_ms);
    bool ours = method.kind == MethodKind::kOurs;
    out += fmt::format("{:<26} {:>10} {:>10} {:>11} {:>16} {:>15}  {}\n", method.name, Milliseconds(median),
                       Milliseconds(Percentile90(method.runs_ms)), ours ? Ratio(median, floor) : "",
                       ours ? Ratio(cp_reflink, median) : "", ours ? Ratio(cp_sparse, median) : "", method.note);
  }
  return out;
}

nlohmann::json ComparisonToJson(const ComparisonTable& table) {
  nlohmann::json methods = nlohmann::json::array();
  std::optional<double> floor = MedianOf(table, MethodKind::kFloor);
  std::optional<double> cp_reflink = MedianOf(table, MethodKind::kCpReflink);
  std::optional<double> cp_sparse = MedianOf(table, MethodKind::kCpSparse);
  for (const MethodResult& method : table.methods) {
    nlohmann::json row = {
        {"name", method.name}, {"command", method.command}, {"runs_ms", method.runs_ms}, {"note", method.note}};
    if (!method.skipped.empty()) row["skipped"] = method.skipped;
    if (!method.error.empty()) row["error"] = method.error;
    std::optional<double> median = Median(method.runs_ms);
    if (method.error.empty() && median) {
      row["median_ms"] = *median;
      row["p90_ms"] = *Percentile90(method.runs_ms);
      if (method.kind == MethodKind::kOurs) {
        if (floor) row["ours_over_floor"] = *median / *floor;
        if (cp_reflink) row["cp_reflink_over_ours"] = *cp_reflink / *median;
        if (cp_sparse) row["cp_sparse_over_ours"] = *cp_sparse / *median;
      }
    }
    methods.push_back(row);
  }
  return {{"filesystem", table.filesystem},
          {"filesystem_description", table.filesystem_description},
          {"dataset", table.dataset},
          {"dataset_description", table.dataset_description},
          {"files", table.files},
          {"directories", table.directories},
          {"logical_bytes", table.logical_bytes},
          {"allocated_bytes", table.allocated_bytes},
          {"repetitions", table.repetitions},
          {"wall_seconds", table.wall_seconds},
          {"methods", methods}};
}

}  // namespace fe::bench
