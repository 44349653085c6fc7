#include "engine/pools/pool_store.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdint>

#include "engine/pools/pool.h"
#include "base/atomic_file.h"
#include "base/fs_util.h"
#include "base/json_fields.h"

namespace fe::engine::pools {
namespace {

using Json = nlohmann::json;

constexpr std::string_view kSuffix = ".json";
constexpr size_t kSpecLimit = size_t{1} << 16;

bool EndsWith(std::string_view text, std::string_view suffix) {
  return text.size() > suffix.size() && text.substr(text.size() - suffix.size()) == suffix;
}

}  // namespace

Json PoolSpecToJson(const PoolSpec& spec) {
  Json json = {{"name", spec.name},
               {"template_id", spec.template_id},
               {"member_state", std::string(InstanceStateName(spec.member_state))},
               {"min_size", spec.min_size},
               {"max_size", spec.max_size}};
  if (spec.memory) json["memory"] = MemoryModeName(*spec.memory);
  return json;
}

Result<PoolSpec> PoolSpecFromJson(const Json& json, std::string_view origin) {
  if (!json.is_object()) return Status::InvalidArgument(std::string(origin) + ": expected a JSON object");
  JsonFields fields(json, std::string(origin));
  PoolSpec spec;
  FE_RETURN_IF_ERROR(fields.String("name", spec.name, JsonFields::kRequired));
  FE_RETURN_IF_ERROR(fields.String("template_id", spec.template_id, JsonFields::kRequired));
  std::string state;
  FE_RETURN_IF_ERROR(fields.String("member_state", state, JsonFields::kRequired));
  Result<InstanceState> parsed = ParseInstanceState(state);
  if (!parsed.ok()) return fields.Fail("member_state", parsed.status().message());
  spec.member_state = *parsed;
  FE_RETURN_IF_ERROR(fields.Number("min_size", spec.min_size, JsonFields::kRequired, 0, 100000));
  FE_RETURN_IF_ERROR(fields.Number("max_size", spec.max_size, JsonFields::kRequired, 0, 100000));
  if (fields.Find("memory") != nullptr) {
    std::string memory;
    FE_RETURN_IF_ERROR(fields.String("memory", memory, JsonFields::kRequired));
    Result<MemoryMode> mode = ParseMemoryMode(memory);
    if (!mode.ok()) return fields.Fail("memory", mode.status().message());
    spec.memory = *mode;
  }
  return spec;
}

Result<PoolStore> PoolStore::Open(std::string root) {
  if (::mkdir(root.c_str(), 0700) != 0 && errno != EEXIST) return Status::FromErrno(errno, "create directory", root);
  int fd = ::open(root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return Status::FromErrno(errno, "open", root);
  return PoolStore(std::move(root), UniqueFd(fd));
}

std::string PoolStore::PathOf(const std::string& name) const { return JoinPath(root_, name + std::string(kSuffix)); }

Json PoolCountersToJson(const PoolCounters& counters) {
  return {{"hits", counters.hits},
          {"misses", counters.misses},
          {"refills", counters.refills},
          {"refill_failures", counters.refill_failures},
          {"refill_us_total", static_cast<uint64_t>(std::llround(counters.refill_seconds_total * 1e6))}};
}

Result<PoolCounters> PoolCountersFromJson(const Json& json, std::string_view origin) {
  PoolCounters counters;
  JsonFields fields(json, std::string(origin));
  Result<const Json*> object = fields.Object("counters", JsonFields::kOptional);
  if (!object.ok()) return object.status();
  if (*object == nullptr) return counters;
  JsonFields reader = fields.Nested(**object, "counters");
  constexpr uint64_t kMax = UINT64_MAX;
  FE_RETURN_IF_ERROR(reader.Unsigned("hits", counters.hits, JsonFields::kRequired, kMax));
  FE_RETURN_IF_ERROR(reader.Unsigned("misses", counters.misses, JsonFields::kRequired, kMax));
  FE_RETURN_IF_ERROR(reader.Unsigned("refills", counters.refills, JsonFields::kRequired, kMax));
  FE_RETURN_IF_ERROR(reader.Unsigned("refill_failures", counters.refill_failures, JsonFields::kRequired, kMax));
  uint64_t refill_us = 0;
  FE_RETURN_IF_ERROR(reader.Unsigned("refill_us_total", refill_us, JsonFields::kRequired, kMax));
  counters.refill_seconds_total = static_cast<double>(refill_us) / 1e6;
  return counters;
}

Status PoolStore::Write(const PoolSpec& spec, const PoolCounters& counters) {
  if (!IsSingleComponent(spec.name) || spec.name.front() == '.') {
    return Status::InvalidArgument("pool name '" + spec.name + "' is not a file name");
  }
  Json json = PoolSpecToJson(spec);
  json["counters"] = PoolCountersToJson(counters);
  return ReplaceFileAtomically(PathOf(spec.name), json.dump(2) + "\n", 0600);
}

Status PoolStore::Remove(const std::string& name) {
  if (!IsSingleComponent(name)) {
    return Status::InvalidArgument("pool name '" + name + "' is not a file name");
  }
  std::string file = name + std::string(kSuffix);
  if (::unlinkat(root_fd_.get(), file.c_str(), 0) != 0) {
    if (errno == ENOENT) return Status::Ok();
    return Status::FromErrno(errno, "remove", PathOf(name));
  }
  if (::fsync(root_fd_.get()) != 0) return Status::FromErrno(errno, "fsync", root_);
  return Status::Ok();
}

Result<std::vector<StoredPool>> PoolStore::List() const {
  int dup = ::openat(root_fd_.get(), ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dup < 0) return Status::FromErrno(errno, "open", root_);
  UniqueFd dir(dup);
  std::vector<DirectoryEntry> entries;
  FE_RETURN_IF_ERROR(ReadDirectory(dir.get(), entries, root_));
  std::vector<StoredPool> pools;
  for (const DirectoryEntry& entry : entries) {
    // Temporary files of an interrupted write are "<name>.json.tmp-XXXXXX": not a spec.
    if (entry.name.front() == '.' || !EndsWith(entry.name, kSuffix)) continue;
    std::string path = JoinPath(root_, entry.name);
    Result<std::string> text = ReadSmallFile(path, kSpecLimit);
    if (!text.ok()) return text.status();
    Json json = Json::parse(*text, nullptr, /*allow_exceptions=*/false);
    if (json.is_discarded()) return Status::InvalidArgument(path + ": not valid JSON");
    Result<PoolSpec> spec = PoolSpecFromJson(json, path);
    if (!spec.ok()) return spec.status();
    if (spec->name + std::string(kSuffix) != entry.name) {
      return JsonFields(Json::object(), path).Fail("name", "'" + spec->name + "' does not match the file name");
    }
    Result<PoolCounters> counters = PoolCountersFromJson(json, path);
    if (!counters.ok()) return counters.status();
    pools.push_back({std::move(*spec), *counters});
  }
  std::sort(pools.begin(), pools.end(),
            [](const StoredPool& a, const StoredPool& b) { return a.spec.name < b.spec.name; });
  return pools;
}

}  // namespace fe::engine::pools
