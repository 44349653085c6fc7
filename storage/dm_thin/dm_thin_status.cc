#include "storage/dm_thin/dm_thin_status.h"

#include <charconv>
#include <cstdio>
#include <vector>

namespace fe::storage::dm_thin {
namespace {

std::vector<std::string_view> Fields(std::string_view text) {
  std::vector<std::string_view> fields;
  size_t pos = 0;
  while (pos < text.size()) {
    while (pos < text.size() && (text[pos] == ' ' || text[pos] == '\t' || text[pos] == '\n')) ++pos;
    size_t end = pos;
    while (end < text.size() && text[end] != ' ' && text[end] != '\t' && text[end] != '\n') ++end;
    if (end > pos) fields.push_back(text.substr(pos, end - pos));
    pos = end;
  }
  return fields;
}

bool ParseNumber(std::string_view text, uint64_t& value) {
  auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  return error == std::errc() && end == text.data() + text.size() && !text.empty();
}

bool ParseRatio(std::string_view text, uint64_t& used, uint64_t& total) {
  size_t slash = text.find('/');
  return slash != std::string_view::npos && ParseNumber(text.substr(0, slash), used) &&
         ParseNumber(text.substr(slash + 1), total) && used <= total;
}

Status Malformed(std::string_view kind, std::string_view device, std::string_view params, std::string_view why) {
  return Status::Io(std::string(kind) + " status of " + std::string(device) + " '" + std::string(params) +
                    "' is malformed: " + std::string(why));
}

double Fraction(uint64_t used, uint64_t total) {
  return total == 0 ? 0.0 : static_cast<double>(used) / static_cast<double>(total);
}

std::string Percent(double fraction) {
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%.1f%%", fraction * 100.0);
  return buffer;
}

}  // namespace

double PoolStatus::DataFraction() const { return Fraction(data_used, data_total); }
double PoolStatus::MetadataFraction() const { return Fraction(metadata_used, metadata_total); }

Result<PoolStatus> ParsePoolStatus(std::string_view pool, std::string_view params) {
  std::vector<std::string_view> fields = Fields(params);
  if (fields.size() == 1 && (fields[0] == "Fail" || fields[0] == "Error")) {
    return Status::Io("thin pool " + std::string(pool) + " reports '" + std::string(fields[0]) +
                      "': it needs repair (thin_check)");
  }
  if (fields.size() < 3) return Malformed("thin-pool", pool, params, "fewer than 3 fields");
  PoolStatus status;
  if (!ParseNumber(fields[0], status.transaction_id)) {
    return Malformed("thin-pool", pool, params, "transaction id is not a number");
  }
  if (!ParseRatio(fields[1], status.metadata_used, status.metadata_total)) {
    return Malformed("thin-pool", pool, params, "metadata blocks are not <used>/<total>");
  }
  if (!ParseRatio(fields[2], status.data_used, status.data_total)) {
    return Malformed("thin-pool", pool, params, "data blocks are not <used>/<total>");
  }
  if (fields.size() > 4) {
    if (fields[4] == "rw") {
      status.mode = PoolMode::kReadWrite;
    } else if (fields[4] == "ro") {
      status.mode = PoolMode::kReadOnly;
    } else if (fields[4] == "out_of_data_space") {
      status.mode = PoolMode::kOutOfDataSpace;
    } else {
      return Malformed("thin-pool", pool, params, "unknown mode '" + std::string(fields[4]) + "'");
    }
  }
  for (size_t i = 5; i < fields.size(); ++i) status.needs_check |= fields[i] == "needs_check";
  return status;
}

Result<ThinStatus> ParseThinStatus(std::string_view device, std::string_view params) {
  std::vector<std::string_view> fields = Fields(params);
  if (fields.size() == 1 && fields[0] == "Fail") {
    return Status::Io("thin device " + std::string(device) + " reports 'Fail'");
  }
  if (fields.size() < 2) return Malformed("thin", device, params, "fewer than 2 fields");
  ThinStatus status;
  if (!ParseNumber(fields[0], status.mapped_sectors)) {
    return Malformed("thin", device, params, "mapped sectors are not a number");
  }
  uint64_t highest = 0;
  if (fields[1] != "-") {
    if (!ParseNumber(fields[1], highest)) {
      return Malformed("thin", device, params, "highest mapped sector is neither a number nor '-'");
    }
    status.highest_mapped_sector = highest;
  }
  return status;
}

Status CheckPoolFill(std::string_view pool, const PoolStatus& status, double threshold) {
  const std::string name = "thin pool " + std::string(pool);
  if (status.mode == PoolMode::kOutOfDataSpace) {
    return Status::NoSpace(name + " is out of data space (" + std::to_string(status.data_used) + "/" +
                           std::to_string(status.data_total) + " blocks)");
  }
  if (status.mode == PoolMode::kReadOnly || status.needs_check) {
    return Status::Io(name + " is read-only" +
                      std::string(status.needs_check ? " and needs a check (thin_check)" : ""));
  }
  auto refuse = [&](std::string_view what, double fraction, uint64_t used, uint64_t total) {
    return Status::NoSpace(name + ": " + std::string(what) + " usage " + Percent(fraction) + " (" +
                           std::to_string(used) + "/" + std::to_string(total) +
                           " blocks) is above the fill threshold " + Percent(threshold));
  };
  if (status.DataFraction() > threshold) {
    return refuse("data", status.DataFraction(), status.data_used, status.data_total);
  }
  if (status.MetadataFraction() > threshold) {
    return refuse("metadata", status.MetadataFraction(), status.metadata_used, status.metadata_total);
  }
  return Status::Ok();
}

Status CheckPoolRoomFor(std::string_view pool, const PoolStatus& status, double threshold, uint64_t blocks,
                        std::string_view what) {
  const auto allowed = static_cast<uint64_t>(threshold * static_cast<double>(status.data_total));
  const uint64_t left = allowed > status.data_used ? allowed - status.data_used : 0;
  if (blocks <= left) return Status::Ok();
  return Status::NoSpace(std::string(what) + " needs " + std::to_string(blocks) + " data blocks of thin pool " +
                         std::string(pool) + ", which has " + std::to_string(left) + " left below its fill threshold " +
                         Percent(threshold) + " (data usage " + Percent(status.DataFraction()) + ", " +
                         std::to_string(status.data_used) + "/" + std::to_string(status.data_total) + " blocks)");
}

}  // namespace fe::storage::dm_thin
