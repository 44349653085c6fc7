#include "storage/clone_report.h"

#include <fmt/format.h>

#include <nlohmann/json.hpp>

namespace fe::storage {
namespace {

double Milliseconds(std::chrono::nanoseconds duration) { return duration.count() / 1e6; }

}  // namespace

nlohmann::json ToJson(const CloneReport& report) {
  nlohmann::json skipped = nlohmann::json::array();
  for (const SkippedEntry& entry : report.skipped) {
    skipped.push_back({{"path", entry.path}, {"reason", entry.reason}});
  }
  return {
      {"mechanism", report.mechanism},
      {"io_engine", report.io_engine},
      {"note", report.note},
      {"files", report.files},
      {"directories", report.directories},
      {"symlinks", report.symlinks},
      {"hardlinks", report.hardlinks},
      {"skipped", skipped},
      {"logical_bytes", report.logical_bytes},
      {"reflinked_bytes", report.reflinked_bytes},
      {"copied_bytes", report.copied_bytes},
      {"fallback_files", report.fallback_files},
      {"phases_ms",
       {{"prepare", Milliseconds(report.phases.prepare)},
        {"tree", Milliseconds(report.phases.tree)},
        {"commit", Milliseconds(report.phases.commit)}}},
      {"total_ms", Milliseconds(report.total)},
  };
}

std::string FormatTable(const CloneReport& report) {
  std::string out;
  auto row = [&out](std::string_view label, const std::string& value) {
    out += fmt::format("{:<18}{}\n", label, value);
  };
  row("mechanism", report.mechanism);
  row("io engine", report.io_engine);
  if (!report.note.empty()) row("note", report.note);
  row("files", std::to_string(report.files));
  row("directories", std::to_string(report.directories));
  row("symlinks", std::to_string(report.symlinks));
  row("hard links", std::to_string(report.hardlinks));
  row("logical bytes", std::to_string(report.logical_bytes));
  row("reflinked bytes", std::to_string(report.reflinked_bytes));
  row("copied bytes", std::to_string(report.copied_bytes));
  row("fallback files", std::to_string(report.fallback_files));
  row("prepare", fmt::format("{:.3f} ms", Milliseconds(report.phases.prepare)));
  row("tree", fmt::format("{:.3f} ms", Milliseconds(report.phases.tree)));
  row("commit", fmt::format("{:.3f} ms", Milliseconds(report.phases.commit)));
  row("total", fmt::format("{:.3f} ms", Milliseconds(report.total)));
  row("skipped", std::to_string(report.skipped.size()));
  for (const SkippedEntry& entry : report.skipped) {
    out += fmt::format("  {}: {}\n", entry.path, entry.reason);
  }
  return out;
}

}  // namespace fe::storage
