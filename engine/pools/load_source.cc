#include "engine/pools/load_source.h"

#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <vector>

#include "base/atomic_file.h"

namespace fe::engine::pools {
namespace {

using Clock = std::chrono::steady_clock;

std::string_view NextWord(std::string_view& text) {
  size_t start = text.find_first_not_of(" \t");
  if (start == std::string_view::npos) {
    text = {};
    return {};
  }
  size_t end = text.find_first_of(" \t", start);
  std::string_view word = text.substr(start, end == std::string_view::npos ? std::string_view::npos : end - start);
  text = end == std::string_view::npos ? std::string_view{} : text.substr(end);
  return word;
}

std::optional<uint64_t> ParseNumber(std::string_view word) {
  uint64_t value = 0;
  auto [end, error] = std::from_chars(word.data(), word.data() + word.size(), value);
  if (error != std::errc() || end != word.data() + word.size() || word.empty()) return std::nullopt;
  return value;
}

// The line of `text` starting with `key` followed by a blank, without the key.
std::optional<std::string_view> LineAfterKey(std::string_view text, std::string_view key) {
  size_t at = 0;
  while (at < text.size()) {
    size_t end = text.find('\n', at);
    std::string_view line = text.substr(at, end == std::string_view::npos ? std::string_view::npos : end - at);
    if (line.size() > key.size() && line.substr(0, key.size()) == key &&
        (line[key.size()] == ' ' || line[key.size()] == '\t')) {
      return line.substr(key.size());
    }
    if (end == std::string_view::npos) break;
    at = end + 1;
  }
  return std::nullopt;
}

class ProcStatLoadSource final : public LoadSource {
 public:
  ProcStatLoadSource() {
    if (Result<CpuTimes> times = Read(); times.ok()) previous_ = *times;
  }
  Result<double> BusyFraction() override {
    Result<CpuTimes> times = Read();
    if (!times.ok()) return times.status();
    std::optional<double> busy = previous_ ? BusyBetween(*previous_, *times) : std::nullopt;
    previous_ = *times;
    if (busy) last_ = *busy;
    return last_;
  }

 private:
  static Result<CpuTimes> Read() {
    Result<std::string> text = ReadSmallFile("/proc/stat", size_t{1} << 20);
    if (!text.ok()) return text.status();
    Result<CpuTimes> times = ParseProcStat(*text);
    if (!times.ok()) return times.status().Annotate("/proc/stat");
    return times;
  }
  std::optional<CpuTimes> previous_;
  double last_ = 0;
};

class CgroupLoadSource final : public LoadSource {
 public:
  explicit CgroupLoadSource(std::string dir) : dir_(std::move(dir)) {
    if (Result<uint64_t> usage = ReadUsage(); usage.ok()) previous_ = Sample{*usage, Clock::now()};
  }
  Result<double> BusyFraction() override {
    Result<uint64_t> usage = ReadUsage();
    if (!usage.ok()) return usage.status();
    Result<double> cpus = Cpus();
    if (!cpus.ok()) return cpus.status();
    Sample now{*usage, Clock::now()};
    if (previous_ && now.usage_usec >= previous_->usage_usec && now.at > previous_->at) {
      double wall_usec = std::chrono::duration<double, std::micro>(now.at - previous_->at).count();
      double used = static_cast<double>(now.usage_usec - previous_->usage_usec);
      last_ = std::clamp(used / (wall_usec * *cpus), 0.0, 1.0);
    }
    previous_ = now;
    return last_;
  }

 private:
  struct Sample {
    uint64_t usage_usec;
    Clock::time_point at;
  };
  Result<uint64_t> ReadUsage() const {
    std::string path = dir_ + "/cpu.stat";
    Result<std::string> text = ReadSmallFile(path, size_t{1} << 20);
    if (!text.ok()) return text.status();
    Result<uint64_t> usage = ParseCgroupUsageUsec(*text);
    if (!usage.ok()) return usage.status().Annotate(path);
    return usage;
  }
  // The CPUs the cgroup may use: its cpu.max quota, else the online CPUs.
  Result<double> Cpus() const {
    double online = static_cast<double>(std::max(1L, ::sysconf(_SC_NPROCESSORS_ONLN)));
    std::string path = dir_ + "/cpu.max";
    Result<std::string> text = ReadSmallFile(path, 4096);
    if (!text.ok()) return text.status().code() == ErrorCode::kNotFound ? Result<double>(online) : text.status();
    Result<std::optional<double>> quota = ParseCgroupCpuMax(*text);
    if (!quota.ok()) return quota.status().Annotate(path);
    return quota->has_value() ? std::min(online, **quota) : online;
  }
  std::string dir_;
  std::optional<Sample> previous_;
  double last_ = 0;
};

}  // namespace

Result<CpuTimes> ParseProcStat(std::string_view text) {
  std::optional<std::string_view> line = LineAfterKey(text, "cpu");
  if (!line) return Status::InvalidArgument("no aggregate 'cpu' line");
  // user nice system idle iowait irq softirq steal [guest guest_nice]: guest time is already in user
  // and nice, so only the first eight fields add up to the total.
  std::vector<uint64_t> fields;
  for (std::string_view word = NextWord(*line); !word.empty(); word = NextWord(*line)) {
    std::optional<uint64_t> value = ParseNumber(word);
    if (!value) return Status::InvalidArgument("'cpu' line: '" + std::string(word) + "' is not a number");
    fields.push_back(*value);
  }
  if (fields.size() < 4)
    return Status::InvalidArgument("'cpu' line has " + std::to_string(fields.size()) + " fields, expected at least 4");
  CpuTimes times;
  for (size_t i = 0; i < fields.size() && i < 8; ++i) times.total += fields[i];
  times.idle = fields[3] + (fields.size() > 4 ? fields[4] : 0);
  return times;
}

std::optional<double> BusyBetween(const CpuTimes& before, const CpuTimes& after) {
  if (after.total <= before.total || after.idle < before.idle) return std::nullopt;
  double total = static_cast<double>(after.total - before.total);
  double idle = static_cast<double>(after.idle - before.idle);
  return std::clamp((total - idle) / total, 0.0, 1.0);
}

Result<uint64_t> ParseCgroupUsageUsec(std::string_view cpu_stat) {
  std::optional<std::string_view> line = LineAfterKey(cpu_stat, "usage_usec");
  if (!line) return Status::InvalidArgument("no usage_usec line");
  std::string_view rest = *line;
  std::string_view word = NextWord(rest);
  std::optional<uint64_t> value = ParseNumber(word);
  if (!value) return Status::InvalidArgument("usage_usec: '" + std::string(word) + "' is not a number");
  return *value;
}

Result<std::optional<double>> ParseCgroupCpuMax(std::string_view cpu_max) {
  std::string_view rest = cpu_max;
  if (!rest.empty() && rest.back() == '\n') rest.remove_suffix(1);
  std::string_view quota = NextWord(rest);
  std::string_view period = NextWord(rest);
  if (quota == "max") return std::optional<double>();
  std::optional<uint64_t> quota_value = ParseNumber(quota);
  std::optional<uint64_t> period_value = period.empty() ? std::optional<uint64_t>(100000) : ParseNumber(period);
  if (!quota_value || !period_value || *period_value == 0) {
    return Status::InvalidArgument("cpu.max '" + std::string(cpu_max.substr(0, cpu_max.find('\n'))) +
                                   "' is not '<quota|max> <period>'");
  }
  return std::optional<double>(static_cast<double>(*quota_value) / static_cast<double>(*period_value));
}

std::unique_ptr<LoadSource> MakeHostLoadSource(std::string cgroup_dir) {
  if (cgroup_dir.empty()) return std::make_unique<ProcStatLoadSource>();
  return std::make_unique<CgroupLoadSource>(std::move(cgroup_dir));
}

}  // namespace fe::engine::pools
