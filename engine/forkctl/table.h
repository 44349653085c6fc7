// Plain-text tables and units for forkctl's human output: columns padded to their widest cell,
// two spaces apart, numeric columns right-aligned.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace fe::engine::forkctl {

class Table {
 public:
  enum class Align { kLeft, kRight };
  struct Column {
    std::string header;
    Align align = Align::kLeft;
    // Lets rows printed by separate calls line up (as long as their cells fit).
    size_t min_width = 0;
  };

  explicit Table(std::vector<Column> columns) : columns_(std::move(columns)) {}

  // A row with fewer cells than columns is padded with empty cells; extra cells are an error of the
  // caller and are dropped.
  void AddRow(std::vector<std::string> cells);
  size_t rows() const { return rows_.size(); }

  // Header line (unless `with_header` is false) and one line per row, each ending in '\n'. Trailing
  // blanks are trimmed.
  std::string Render(bool with_header = true) const;

 private:
  std::vector<Column> columns_;
  std::vector<std::vector<std::string>> rows_;
};

// 0 B, 512 B, 4.0 KiB, 320.0 MiB, 10.00 GiB (binary units).
std::string FormatBytes(uint64_t bytes);
// Microseconds as milliseconds with three decimals: 1234 -> "1.234".
std::string FormatMillis(int64_t microseconds);

}  // namespace fe::engine::forkctl
