#include "storage/dm_thin/dm_thin_ledger.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <nlohmann/json.hpp>

#include "base/atomic_file.h"
#include "base/json_fields.h"
#include "storage/dm_thin/dm_thin_table.h"

namespace fe::storage::dm_thin {
namespace {

using json = nlohmann::json;
constexpr int kFormatVersion = 1;

std::optional<ThinState> StateFromName(std::string_view name) {
  for (ThinState state : {ThinState::kCreating, ThinState::kReady, ThinState::kRemoving}) {
    if (ThinStateName(state) == name) return state;
  }
  return std::nullopt;
}

}  // namespace

std::string_view ThinStateName(ThinState state) {
  switch (state) {
    case ThinState::kCreating: return "creating";
    case ThinState::kReady: return "ready";
    case ThinState::kRemoving: return "removing";
  }
  return "unknown";
}

std::optional<uint32_t> AllocateThinId(uint32_t next, const std::set<uint32_t>& used) {
  if (used.size() > kMaxThinId) return std::nullopt;
  uint32_t id = next > kMaxThinId ? 0 : next;
  while (used.count(id) != 0) id = id == kMaxThinId ? 0 : id + 1;
  return id;
}

Result<std::unique_ptr<ThinLedger>> ThinLedger::Open(const std::string& path) {
  const std::string lock_path = path + ".lock";
  Result<FileLock> lock = FileLock::Acquire(lock_path, "ledger " + path);
  if (!lock.ok()) return lock.status();
  // Under the lock no other process writes this ledger, so a temporary file of it is a crash's.
  Result<std::vector<std::string>> leftovers = RemoveTemporaryFilesOf(path);
  if (!leftovers.ok()) return leftovers.status().Annotate("ledger " + path);
  Result<State> state = Load(path);
  if (!state.ok()) return state.status();
  std::unique_ptr<ThinLedger> ledger(new ThinLedger(path, std::move(*lock)));
  ledger->state_ = std::move(*state);
  return ledger;
}

Result<ThinLedger::State> ThinLedger::Load(const std::string& path) {
  if (::access(path.c_str(), F_OK) != 0 && errno == ENOENT) return State{};
  Result<std::string> text = ReadSmallFile(path);
  if (!text.ok()) return text.status();
  auto corrupt = [&](const std::string& why) {
    return Status::Io("ledger " + path + " is corrupt (" + why +
                      "); it is kept as is because it names thin ids the pool may hold");
  };
  Result<State> state = Parse(*text);
  if (!state.ok()) return corrupt(state.status().message());
  return state;
}

Result<ThinLedger::State> ThinLedger::Parse(const std::string& text) {
  json document = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (document.is_discarded() || !document.is_object()) return Status::InvalidArgument("not a JSON object");
  JsonFields fields(document, "");
  int64_t version = 0;
  FE_RETURN_IF_ERROR(fields.Integer("version", version, JsonFields::kRequired, 0, INT64_MAX));
  if (version != kFormatVersion) return fields.Fail("version", "unknown version " + std::to_string(version));
  State state;
  FE_RETURN_IF_ERROR(fields.Number("next_id", state.next_id, JsonFields::kRequired, 0, kMaxThinId));
  Result<const json*> volumes = fields.Object("volumes", JsonFields::kRequired);
  if (!volumes.ok()) return volumes.status();
  if (!(*volumes)->is_object()) return fields.Fail("volumes", "not an object");
  std::set<uint32_t> ids;
  for (const auto& [volume, entry] : (*volumes)->items()) {
    const std::string field = "volumes." + volume;
    if (!entry.is_object()) return fields.Fail(field, "not an object");
    JsonFields record_fields = fields.Nested(entry, field);
    ThinRecord record;
    std::string state_name;
    FE_RETURN_IF_ERROR(record_fields.Number("id", record.id, JsonFields::kRequired, 0, kMaxThinId));
    FE_RETURN_IF_ERROR(record_fields.String("state", state_name, JsonFields::kRequired));
    FE_RETURN_IF_ERROR(record_fields.Unsigned("sectors", record.sectors, JsonFields::kRequired, UINT64_MAX));
    std::optional<ThinState> thin_state = StateFromName(state_name);
    if (!thin_state) return record_fields.Fail("state", "unknown state '" + state_name + "'");
    record.state = *thin_state;
    if (const json* origin = record_fields.Find("origin"); origin != nullptr && !origin->is_null()) {
      uint32_t origin_id = 0;
      FE_RETURN_IF_ERROR(record_fields.Number("origin", origin_id, JsonFields::kRequired, 0, kMaxThinId));
      record.origin = origin_id;
    }
    if (!ids.insert(record.id).second) return record_fields.Fail("id", "duplicate id " + std::to_string(record.id));
    state.records.emplace(volume, record);
  }
  return state;
}

Status ThinLedger::Commit(State state) {
  json volumes = json::object();
  for (const auto& [volume, record] : state.records) {
    volumes[volume] = {{"id", record.id},
                       {"state", ThinStateName(record.state)},
                       {"sectors", record.sectors},
                       {"origin", record.origin ? json(*record.origin) : json(nullptr)}};
  }
  json document = {{"version", kFormatVersion}, {"next_id", state.next_id}, {"volumes", volumes}};
  FE_RETURN_IF_ERROR(ReplaceFileDurably(path_, document.dump(2) + "\n", 0600));
  state_ = std::move(state);
  return Status::Ok();
}

Result<uint32_t> ThinLedger::BeginCreate(const std::string& volume, uint64_t sectors, std::optional<uint32_t> origin) {
  std::lock_guard lock(mutex_);
  if (state_.records.count(volume) != 0) {
    return Status::AlreadyExists("ledger " + path_ + " already has volume " + volume + " (state " +
                                 std::string(ThinStateName(state_.records.at(volume).state)) + ")");
  }
  std::set<uint32_t> used;
  for (const auto& [name, record] : state_.records) used.insert(record.id);
  std::optional<uint32_t> id = AllocateThinId(state_.next_id, used);
  if (!id) return Status::NoSpace("ledger " + path_ + ": every thin device id is in use");
  State next = state_;
  next.records[volume] = ThinRecord{.id = *id, .state = ThinState::kCreating, .sectors = sectors, .origin = origin};
  next.next_id = *id == kMaxThinId ? 0 : *id + 1;
  FE_RETURN_IF_ERROR(Commit(std::move(next)));
  return *id;
}

Status ThinLedger::SetState(const std::string& volume, ThinState state) {
  std::lock_guard lock(mutex_);
  if (state_.records.count(volume) == 0) {
    return Status::NotFound("ledger " + path_ + " has no volume " + volume);
  }
  State next = state_;
  next.records[volume].state = state;
  return Commit(std::move(next));
}

Status ThinLedger::Erase(const std::string& volume) {
  std::lock_guard lock(mutex_);
  if (state_.records.count(volume) == 0) return Status::Ok();
  State next = state_;
  next.records.erase(volume);
  return Commit(std::move(next));
}

std::optional<ThinRecord> ThinLedger::Find(const std::string& volume) const {
  std::lock_guard lock(mutex_);
  auto it = state_.records.find(volume);
  if (it == state_.records.end()) return std::nullopt;
  return it->second;
}

std::map<std::string, ThinRecord> ThinLedger::Records() const {
  std::lock_guard lock(mutex_);
  return state_.records;
}

}  // namespace fe::storage::dm_thin
