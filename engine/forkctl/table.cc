#include "engine/forkctl/table.h"

#include <fmt/format.h>

#include <algorithm>

namespace fe::engine::forkctl {

void Table::AddRow(std::vector<std::string> cells) {
  cells.resize(columns_.size());
  rows_.push_back(std::move(cells));
}

std::string Table::Render(bool with_header) const {
  std::vector<size_t> widths(columns_.size(), 0);
  for (size_t i = 0; i < columns_.size(); ++i) {
    widths[i] = std::max(columns_[i].min_width, with_header ? columns_[i].header.size() : 0);
    for (const auto& row : rows_) widths[i] = std::max(widths[i], row[i].size());
  }
  auto line = [&](const std::vector<std::string>& cells) {
    std::string out;
    for (size_t i = 0; i < cells.size(); ++i) {
      if (i > 0) out += "  ";
      size_t pad = widths[i] - cells[i].size();
      if (columns_[i].align == Align::kRight) out.append(pad, ' ');
      out += cells[i];
      if (columns_[i].align == Align::kLeft) out.append(pad, ' ');
    }
    out.erase(out.find_last_not_of(' ') + 1);
    return out + "\n";
  };
  std::string out;
  if (with_header) {
    std::vector<std::string> headers;
    for (const Column& column : columns_) headers.push_back(column.header);
    out += line(headers);
  }
  for (const auto& row : rows_) out += line(row);
  return out;
}

std::string FormatBytes(uint64_t bytes) {
  constexpr double kKiB = 1024.0;
  const double value = static_cast<double>(bytes);
  if (bytes < 1024) return fmt::format("{} B", bytes);
  if (value < kKiB * kKiB) return fmt::format("{:.1f} KiB", value / kKiB);
  if (value < kKiB * kKiB * kKiB) return fmt::format("{:.1f} MiB", value / (kKiB * kKiB));
  return fmt::format("{:.2f} GiB", value / (kKiB * kKiB * kKiB));
}

std::string FormatMillis(int64_t microseconds) {
  return fmt::format("{:.3f}", static_cast<double>(microseconds) / 1000.0);
}

}  // namespace fe::engine::forkctl
