#include "bench/backends_report.h"

#include <algorithm>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "bench/compare_report.h"
#include "storage/registry/backend_selection.h"

namespace fe::bench {
namespace {

constexpr double kFastFactor = 50;       // btrfs-backed clone of small-files vs cp -a --reflink=always
constexpr double kFlatLimit = 1.25;      // slowest / fastest snapshot median over the tree sizes
constexpr double kAutoTolerance = 0.10;  // auto vs the best single backend

const BackendRow* FindRow(const BackendTable& table, const std::string& slug) {
  for (const BackendRow& row : table.rows) {
    if (row.slug == slug && row.error.empty()) return &row;
  }
  return nullptr;
}

std::optional<double> BestBackend(const BackendTable& table, std::string* slug = nullptr) {
  std::optional<double> best;
  for (const BackendRow& row : table.rows) {
    std::optional<double> median = row.error.empty() ? Median(row.runs_ms) : std::nullopt;
    if (row.role != Role::kBackend || !median || (best && *best <= *median)) continue;
    best = median;
    if (slug) *slug = row.slug;
  }
  return best;
}

std::optional<double> Baseline(const BackendTable& table) {
  for (const BackendRow& row : table.rows) {
    if (row.baseline && row.error.empty()) return Median(row.runs_ms);
  }
  return std::nullopt;
}

std::string Ms(std::optional<double> ms) { return ms ? fmt::format("{:.2f}", *ms) : "-"; }

// Relative to a reference time: "+4.1%" / "-2.0%" up to twice as slow, then "3.5x".
std::string VersusBest(double median, double best) {
  if (median == best) return "best";
  if (median >= 2 * best) return fmt::format("{:.1f}x", median / best);
  return fmt::format("{:+.1f}%", 100 * (median / best - 1));
}

std::string Mechanism(const std::string& note) { return note.substr(0, note.find(';')); }

struct Crossover {
  std::optional<size_t> first;               // index of the smallest size where the snapshot wins
  std::optional<double> break_even_entries;  // interpolated between that size and the one before
};

Crossover FindCrossover(const std::vector<SweepPoint>& sweep) {
  Crossover crossover;
  std::optional<double> previous_gap;  // reflink - snapshot at the previous size
  for (size_t i = 0; i < sweep.size(); ++i) {
    std::optional<double> snapshot = RowMedian(*sweep[i].table, "btrfs-snapshot");
    std::optional<double> reflink = RowMedian(*sweep[i].table, "reflink");
    if (!snapshot || !reflink) continue;
    double gap = *reflink - *snapshot;
    if (gap > 0) {
      crossover.first = i;
      if (i > 0 && previous_gap && *previous_gap <= 0) {
        double low = sweep[i - 1].table->entries, high = sweep[i].table->entries;
        crossover.break_even_entries = low + (high - low) * -*previous_gap / (gap - *previous_gap);
      }
      break;
    }
    previous_gap = gap;
  }
  return crossover;
}

struct Target {
  std::string name;
  std::optional<bool> holds;  // nullopt: not measured in this run
  std::string detail;
};

const BackendTable* FindTable(const std::vector<BackendTable>& tables, const std::string& filesystem,
                              const std::string& input) {
  for (const BackendTable& table : tables) {
    if (table.filesystem == filesystem && table.input == input) return &table;
  }
  return nullptr;
}

std::vector<Target> EvaluateTargets(const std::vector<BackendTable>& tables, const std::vector<SweepPoint>& sweep) {
  std::vector<Target> targets;

  Target fast{fmt::format("btrfs-backed clone of small-files >= {:.0f}x faster than cp -a "
                          "--reflink=always",
                          kFastFactor),
              std::nullopt, "not measured"};
  if (const BackendTable* table = FindTable(tables, "btrfs", "small-files")) {
    std::optional<double> cp = Baseline(*table), snapshot = RowMedian(*table, "btrfs-snapshot");
    std::optional<double> automatic = RowMedian(*table, "auto");
    if (cp && snapshot && automatic) {
      fast.holds = *cp / *snapshot >= kFastFactor;
      fast.detail = fmt::format("{:.1f}x (btrfs backend {:.2f} ms vs cp {:.1f} ms); auto {:.1f}x", *cp / *snapshot,
                                *snapshot, *cp, *cp / *automatic);
    }
  }
  targets.push_back(fast);

  Target flat{"btrfs snapshot flat in tree size (10, 1,000, 10,000 files)", std::nullopt, "not measured"};
  std::vector<std::string> snapshots, reflinks;
  std::vector<double> medians;
  for (const SweepPoint& point : sweep) {
    std::optional<double> median = RowMedian(*point.table, "btrfs-snapshot");
    if (!median || (point.files != 10 && point.files != 1000 && point.files != 10000)) continue;
    medians.push_back(*median);
    snapshots.push_back(fmt::format("{:.2f}", *median));
    reflinks.push_back(Ms(RowMedian(*point.table, "reflink")));
  }
  if (medians.size() >= 2) {
    double spread =
        *std::max_element(medians.begin(), medians.end()) / *std::min_element(medians.begin(), medians.end());
    flat.holds = medians.size() == 3 && spread <= kFlatLimit;
    flat.detail = fmt::format("{} ms, slowest/fastest {:.2f}x (limit {:.2f}x); reflink {} ms",
                              fmt::join(snapshots, " / "), spread, kFlatLimit, fmt::join(reflinks, " / "));
  }
  targets.push_back(flat);

  Target automatic{fmt::format("auto within {:.0f}% of the best single backend on (a) and (b)", 100 * kAutoTolerance),
                   std::nullopt, ""};
  for (const BackendTable& table : tables) {
    if (table.input != "guest-dir" && table.input != "small-files") continue;
    std::string best_slug;
    std::optional<double> best = BestBackend(table, &best_slug);
    std::optional<double> median = RowMedian(table, "auto");
    std::string same;
    for (const BackendRow& row : table.rows) {
      if (!row.also_auto || !row.error.empty()) continue;
      median = Median(row.runs_ms);
      same = fmt::format(", auto is the {} backend", row.slug);
    }
    if (!best || !median) continue;
    bool ok = *median <= (1 + kAutoTolerance) * *best;
    automatic.holds = automatic.holds.value_or(true) && ok;
    automatic.detail +=
        fmt::format("{}{} {}: {} ({:.2f} vs {} {:.2f} ms{})", automatic.detail.empty() ? "" : "; ", table.filesystem,
                    table.input, VersusBest(*median, *best), *median, best_slug, *best, same);
  }
  if (automatic.detail.empty()) automatic.detail = "not measured";
  targets.push_back(automatic);
  return targets;
}

nlohmann::json RowToJson(const BackendRow& row) {
  static const char* kRoles[] = {"backend", "auto", "tool"};
  nlohmann::json json = {
      {"name", row.name},         {"slug", row.slug},          {"role", kRoles[static_cast<int>(row.role)]},
      {"command", row.command},   {"runs_ms", row.runs_ms},    {"note", row.note},
      {"baseline", row.baseline}, {"also_auto", row.also_auto}};
  if (std::optional<double> median = Median(row.runs_ms); median && row.error.empty()) {
    json["median_ms"] = *median;
    json["p90_ms"] = *Percentile90(row.runs_ms);
  }
  if (!row.error.empty()) json["error"] = row.error;
  return json;
}

}  // namespace

std::optional<double> RowMedian(const BackendTable& table, const std::string& slug) {
  const BackendRow* row = FindRow(table, slug);
  return row ? Median(row->runs_ms) : std::nullopt;
}

std::string FormatBackendTable(const BackendTable& table) {
  std::optional<double> best = BestBackend(table);
  std::optional<double> baseline = Baseline(table);
  std::string baseline_label = "baseline/this";
  for (const BackendRow& row : table.rows) {
    if (row.baseline) baseline_label = row.slug + "/this";
  }
  std::string out = fmt::format("\n=== {} / {}: {}\n", table.filesystem, table.input, table.description);
  out += fmt::format("    {} files, {} entries; timed runs after one verified warm-up each\n\n", table.files,
                     table.entries);
  out += fmt::format("{:<38} {:>5} {:>10} {:>10} {:>16} {:>16}  {}\n", "method", "runs", "median ms", "p90 ms",
                     "vs best backend", baseline_label, "what it did");
  for (const BackendRow& row : table.rows) {
    std::optional<double> median = Median(row.runs_ms);
    if (!row.error.empty() || !median) {
      out += fmt::format("{:<38} {:>5} {:>10} {:>10} {:>16} {:>16}  FAILED: {}\n", row.name, row.runs_ms.size(), "-",
                         "-", "", "", row.error);
      continue;
    }
    out += fmt::format("{:<38} {:>5} {:>10} {:>10} {:>16} {:>16}  {}\n", row.name, row.runs_ms.size(), Ms(median),
                       Ms(Percentile90(row.runs_ms)), best ? VersusBest(*median, *best) : "-",
                       baseline ? fmt::format("{:.2f}x", *baseline / *median) : "-", row.note);
  }
  return out;
}

std::string FormatSweep(const std::vector<SweepPoint>& sweep) {
  if (sweep.empty()) return "";
  std::string out =
      "\n=== btrfs / crossover sweep: trees of 4 KiB files, up to 100 per directory "
      "(median / p90 ms)\n\n";
  out += fmt::format("{:>7} {:>8} {:>17} {:>17} {:>17} {:>17} {:>15} {:>13}\n", "files", "entries", "btrfs-snapshot",
                     "reflink", "auto", "snapshot/reflink", "auto did", "auto vs best");
  std::vector<std::string> auto_misses;
  for (const SweepPoint& point : sweep) {
    const BackendTable& table = *point.table;
    auto cell = [&](const std::string& slug) {
      const BackendRow* row = FindRow(table, slug);
      if (!row || row->runs_ms.empty()) return std::string("FAILED");
      return fmt::format("{:.2f} / {:.2f}", *Median(row->runs_ms), *Percentile90(row->runs_ms));
    };
    std::optional<double> snapshot = RowMedian(table, "btrfs-snapshot");
    std::optional<double> reflink = RowMedian(table, "reflink");
    std::optional<double> automatic = RowMedian(table, "auto");
    std::optional<double> best = BestBackend(table);
    const BackendRow* auto_row = FindRow(table, "auto");
    std::string versus = automatic && best ? VersusBest(*automatic, *best) : "-";
    if (automatic && best && *automatic > (1 + kAutoTolerance) * *best) {
      auto_misses.push_back(fmt::format("{} files ({})", point.files, versus));
    }
    out += fmt::format("{:>7} {:>8} {:>17} {:>17} {:>17} {:>17} {:>15} {:>13}\n", point.files, table.entries,
                       cell("btrfs-snapshot"), cell("reflink"), cell("auto"),
                       snapshot && reflink ? fmt::format("{:.2f}x", *snapshot / *reflink) : "-",
                       auto_row ? Mechanism(auto_row->note) : "-", versus);
  }

  Crossover crossover = FindCrossover(sweep);
  size_t constant = storage::registry::kBtrfsSnapshotCrossoverEntries;
  if (!crossover.first) {
    out += "\nmeasured crossover: none, reflink is at least as fast as the snapshot at every size\n";
  } else {
    const BackendTable& first = *sweep[*crossover.first].table;
    out += fmt::format(
        "\nmeasured crossover: the snapshot first beats reflink at {} files ({} "
        "entries)",
        sweep[*crossover.first].files, first.entries);
    if (crossover.break_even_entries) {
      out += fmt::format(
          "; break-even, interpolating reflink - snapshot linearly between {} and "
          "{} entries: ~{:.0f} entries",
          sweep[*crossover.first - 1].table->entries, first.entries, *crossover.break_even_entries);
    } else if (*crossover.first == 0) {
      out += " (the smallest size measured)";
    }
    out += "\n";
  }
  out += fmt::format("kBtrfsSnapshotCrossoverEntries = {}: auto reflinks trees under {} entries; ", constant, constant);
  out += auto_misses.empty()
             ? fmt::format("auto is within {:.0f}% of the faster mechanism at every size above\n", 100 * kAutoTolerance)
             : fmt::format("auto is more than {:.0f}% slower than the faster mechanism at {}\n", 100 * kAutoTolerance,
                           fmt::join(auto_misses, ", "));
  return out;
}

std::string FormatTargets(const std::vector<BackendTable>& tables, const std::vector<SweepPoint>& sweep) {
  std::string out = "\nTargets:\n";
  for (const Target& target : EvaluateTargets(tables, sweep)) {
    const char* verdict = !target.holds ? "n/a  " : *target.holds ? "holds" : "FAILS";
    out += fmt::format("  {}  {}: {}\n", verdict, target.name, target.detail);
  }
  return out;
}

nlohmann::json BackendsToJson(const std::vector<BackendTable>& tables, const std::vector<SweepPoint>& sweep) {
  nlohmann::json json_tables = nlohmann::json::array();
  for (const BackendTable& table : tables) {
    nlohmann::json rows = nlohmann::json::array();
    for (const BackendRow& row : table.rows) rows.push_back(RowToJson(row));
    json_tables.push_back({{"filesystem", table.filesystem},
                           {"filesystem_description", table.filesystem_description},
                           {"input", table.input},
                           {"description", table.description},
                           {"files", table.files},
                           {"entries", table.entries},
                           {"rows", rows}});
  }
  nlohmann::json json_sweep = nlohmann::json::array();
  for (const SweepPoint& point : sweep) {
    json_sweep.push_back({{"files", point.files}, {"entries", point.table->entries}, {"input", point.table->input}});
  }
  Crossover crossover = FindCrossover(sweep);
  nlohmann::json json_crossover = {{"constant_entries", storage::registry::kBtrfsSnapshotCrossoverEntries}};
  if (crossover.first) {
    json_crossover["first_snapshot_win_files"] = sweep[*crossover.first].files;
    json_crossover["first_snapshot_win_entries"] = sweep[*crossover.first].table->entries;
  }
  if (crossover.break_even_entries) {
    json_crossover["break_even_entries"] = *crossover.break_even_entries;
  }
  nlohmann::json json_targets = nlohmann::json::array();
  for (const Target& target : EvaluateTargets(tables, sweep)) {
    json_targets.push_back({{"target", target.name},
                            {"holds", target.holds ? nlohmann::json(*target.holds) : nullptr},
                            {"detail", target.detail}});
  }
  return {{"tables", json_tables}, {"sweep", json_sweep}, {"crossover", json_crossover}, {"targets", json_targets}};
}

}  // namespace fe::bench
