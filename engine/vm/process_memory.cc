#include "engine/vm/process_memory.h"

#include <charconv>
#include <string>

#include <optional>

#include "base/atomic_file.h"
#include "engine/vm/process_stat.h"

namespace fe::engine::vm {
namespace {

// The kB value of a "Key:   123 kB" line.
std::optional<uint64_t> KilobytesOf(std::string_view line) {
  size_t begin = line.find_first_of("0123456789");
  if (begin == std::string_view::npos) return std::nullopt;
  uint64_t value = 0;
  auto [end, error] = std::from_chars(line.data() + begin, line.data() + line.size(), value);
  if (error != std::errc()) return std::nullopt;
  return value * 1024;
}

}  // namespace

Result<ProcessMemory> ParseSmapsRollup(std::string_view text, std::string_view origin) {
  ProcessMemory memory;
  bool has_rss = false;
  while (!text.empty()) {
    size_t newline = text.find('\n');
    std::string_view line = text.substr(0, newline);
    text = newline == std::string_view::npos ? std::string_view() : text.substr(newline + 1);
    size_t colon = line.find(':');
    if (colon == std::string_view::npos) continue;
    std::string_view key = line.substr(0, colon);
    std::optional<uint64_t> bytes = KilobytesOf(line.substr(colon + 1));
    if (!bytes) continue;
    if (key == "Rss") {
      memory.rss_bytes = *bytes;
      has_rss = true;
    } else if (key == "Pss") {
      memory.pss_bytes = *bytes;
    } else if (key == "Anonymous") {
      memory.anonymous_bytes = *bytes;
    } else if (key == "Shared_Clean" || key == "Shared_Dirty") {
      memory.shared_bytes += *bytes;
    } else if (key == "Private_Clean" || key == "Private_Dirty") {
      memory.private_bytes += *bytes;
    } else if (key == "SwapPss") {
      memory.swap_pss_bytes = *bytes;
    }
  }
  if (!has_rss) return Status::InvalidArgument(std::string(origin) + ": no Rss line");
  return memory;
}

Result<ProcessMemory> ReadProcessMemory(const ProcessRecord& record) {
  const std::string path = "/proc/" + std::to_string(record.pid) + "/smaps_rollup";
  Result<std::string> text = ReadSmallFile(path, 64 * 1024);
  if (!text.ok()) return Status::NotFound("process " + std::to_string(record.pid) + ": " + text.status().message());
  // Read before the start time is checked: a pid reused in between is then caught.
  Result<ProcStat> stat = ReadProcStat(record.pid);
  if (!stat.ok() || stat->start_time != record.start_time || stat->state == 'Z') {
    return Status::NotFound("process " + std::to_string(record.pid) + " no longer runs");
  }
  return ParseSmapsRollup(*text, path);
}

}  // namespace fe::engine::vm
