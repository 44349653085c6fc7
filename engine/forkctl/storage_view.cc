#include "engine/forkctl/storage_view.h"

#include <fmt/format.h>

#include "engine/forkctl/json_fields.h"
#include "engine/forkctl/table.h"

namespace fe::engine::forkctl {

using json = nlohmann::json;

namespace {

std::string Bytes(const json& object, const char* key) {
  return FormatBytes(static_cast<uint64_t>(Integer(object, key)));
}

// "12.5%" of used/total, "-" without a total.
std::string Percent(const json& object, const char* used, const char* total) {
  const int64_t whole = Integer(object, total);
  if (whole <= 0) return "-";
  return fmt::format("{:.1f}%", 100.0 * static_cast<double>(Integer(object, used)) / static_cast<double>(whole));
}

}  // namespace

std::string MeasuredCostsLines(const json& costs) {
  if (!costs.is_object()) return "";
  std::string out;
  for (const json& clone : Elements(Field(costs, "clones"))) {
    out += fmt::format("measured    {:<15} {:>3} entries {:>8} us\n", Text(clone, "mechanism"),
                       Integer(clone, "entries"), Integer(clone, "clone_us"));
  }
  if (Field(costs, "btrfs_crossover_entries").is_number()) {
    out += fmt::format("crossover   trees under {} entries are reflinked, larger ones snapshotted\n",
                       Integer(costs, "btrfs_crossover_entries"));
  }
  return out;
}

std::string StorageDetails(const json& storage) {
  std::string out = fmt::format(
      "backend     {}\nroot        {}\nwhy         {}\nvolumes     {}\nfilesystem  {} ({} free)\n",
      Text(storage, "backend"), Text(storage, "root"), Text(storage, "selection_reason"), Text(storage, "volumes"),
      Bytes(storage, "filesystem_bytes"), Bytes(storage, "filesystem_free_bytes"));
  const json& pool = Field(storage, "pool");
  if (pool.is_object()) {
    const json& threshold = Field(pool, "fill_threshold");
    out +=
        fmt::format("thin pool   {} ({}): data {} of {} ({}), metadata {} of {} ({}), refuses above {:.1f}%\n",
                    Text(pool, "name"), Text(pool, "mode"), Bytes(pool, "data_used_bytes"), Bytes(pool, "data_bytes"),
                    Percent(pool, "data_used_bytes", "data_bytes"), Bytes(pool, "metadata_used_bytes"),
                    Bytes(pool, "metadata_bytes"), Percent(pool, "metadata_used_bytes", "metadata_bytes"),
                    100.0 * (threshold.is_number() ? threshold.get<double>() : 0.0));
  }
  return out + MeasuredCostsLines(Field(storage, "measured_costs"));
}

}  // namespace fe::engine::forkctl
