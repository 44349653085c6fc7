#include "engine/forkd/idempotency_store.h"

#include <fcntl.h>

#include <cerrno>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "base/atomic_file.h"
#include "base/fs_util.h"
#include "base/json_fields.h"
#include "base/unique_fd.h"

namespace fe::engine::forkd {
namespace {

using Json = nlohmann::json;
constexpr std::string_view kSuffix = ".json";
constexpr size_t kMaxKey = 128;
constexpr size_t kRecordLimit = size_t{1} << 20;  // a request body (64 KiB) and a fan-out's reply

bool KeyCharacter(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
         c == ':' || c == '-';
}

int64_t UnixMillis(Clock::WallPoint time) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(time.time_since_epoch()).count();
}

struct Record {
  std::string key;
  IdempotencyStore::Request request;
  std::vector<std::string> names;
  std::string started_at;
  bool done = false;
  IdempotencyStore::StoredReply reply;
  int64_t finished_unix_ms = 0;
};

Json RecordToJson(const Record& record) {
  Json json{{"key", record.key},
            {"method", record.request.method},
            {"path", record.request.path},
            {"body", record.request.body},
            {"names", record.names},
            {"started_at", record.started_at},
            {"state", record.done ? "done" : "pending"}};
  if (record.done) {
    json["status"] = record.reply.status;
    json["reply"] = record.reply.body;
    json["finished_unix_ms"] = record.finished_unix_ms;
  }
  return json;
}

Result<Record> ReadRecord(const std::string& path) {
  Result<std::string> text = ReadSmallFile(path, kRecordLimit);
  if (!text.ok()) return text.status();
  Json json = Json::parse(*text, nullptr, /*allow_exceptions=*/false);
  if (!json.is_object()) return Status::InvalidArgument(path + ": not a JSON object");
  JsonFields fields(json, path);
  Record record;
  std::string state;
  FE_RETURN_IF_ERROR(fields.String("key", record.key, JsonFields::kRequired));
  FE_RETURN_IF_ERROR(fields.String("method", record.request.method, JsonFields::kRequired));
  FE_RETURN_IF_ERROR(fields.String("path", record.request.path, JsonFields::kRequired));
  FE_RETURN_IF_ERROR(fields.String("body", record.request.body, JsonFields::kRequired));
  FE_RETURN_IF_ERROR(fields.String("started_at", record.started_at, JsonFields::kRequired));
  FE_RETURN_IF_ERROR(fields.String("state", state, JsonFields::kRequired));
  Result<const Json*> names = fields.Array("names", JsonFields::kRequired);
  if (!names.ok()) return names.status();
  for (const Json& name : **names) {
    if (!name.is_string()) return fields.Fail("names", "expected strings");
    record.names.push_back(name.get<std::string>());
  }
  if (state != "pending" && state != "done") return fields.Fail("state", "expected pending or done");
  record.done = state == "done";
  if (record.done) {
    FE_RETURN_IF_ERROR(fields.Number("status", record.reply.status, JsonFields::kRequired, 100, 599));
    FE_RETURN_IF_ERROR(fields.String("reply", record.reply.body, JsonFields::kRequired));
    FE_RETURN_IF_ERROR(
        fields.Number("finished_unix_ms", record.finished_unix_ms, JsonFields::kRequired, 0, uint64_t{INT64_MAX}));
  }
  return record;
}

bool EndsWith(std::string_view text, std::string_view suffix) {
  return text.size() > suffix.size() && text.substr(text.size() - suffix.size()) == suffix;
}

}  // namespace

Result<std::unique_ptr<IdempotencyStore>> IdempotencyStore::Open(std::string dir, std::chrono::seconds window,
                                                                 const Clock& clock) {
  FE_RETURN_IF_ERROR(MakeDirectories(dir, 0700));
  return std::unique_ptr<IdempotencyStore>(new IdempotencyStore(std::move(dir), window, clock));
}

Status IdempotencyStore::CheckKey(std::string_view key) {
  bool valid = !key.empty() && key.size() <= kMaxKey;
  for (char c : key) valid = valid && KeyCharacter(c);
  if (valid) return Status::Ok();
  std::string message = "Idempotency-Key '";
  message.append(key.substr(0, kMaxKey)).append("' is not 1 to 128 of A-Z a-z 0-9 . _ : -");
  return Status::InvalidArgument(std::move(message));
}

std::string IdempotencyStore::PathOf(const std::string& key) const {
  return JoinPath(dir_, key + std::string(kSuffix));
}

Result<IdempotencyStore::Claim> IdempotencyStore::Begin(const std::string& key, const Request& request,
                                                        const std::vector<std::string>& names) {
  FE_RETURN_IF_ERROR(CheckKey(key));
  bool sweep = false;
  {
    std::lock_guard lock(mutex_);
    if (clock_.Now() - last_sweep_ >= std::chrono::hours(1)) sweep = true, last_sweep_ = clock_.Now();
  }
  if (sweep) {
    if (Result<size_t> swept = Sweep(); !swept.ok()) spdlog::warn("idempotency records: {}", swept.status().ToString());
  }
  {
    // The key is held while its record is read and written, without holding up other keys' I/O.
    std::lock_guard lock(mutex_);
    if (!in_flight_.insert(key).second) {
      return Status::Busy("Idempotency-Key '" + key + "': its first request is still running; retry later");
    }
  }
  auto release = [this, &key] {
    std::lock_guard lock(mutex_);
    in_flight_.erase(key);
  };
  const std::string path = PathOf(key);
  if (::access(path.c_str(), F_OK) == 0) {
    Result<Record> record = ReadRecord(path);
    if (!record.ok()) {
      release();
      return record.status().Annotate("Idempotency-Key '" + key + "'");
    }
    if (!(record->request == request)) {
      release();
      return Status::InvalidArgument("Idempotency-Key '" + key + "' was first used for " + record->request.method +
                                     " " + record->request.path + " with another body or path: use a new key");
    }
    // A pending record of an earlier process (cut by a crash) is undone at start, so a record found
    // here is a finished one.
    if (record->done) {
      release();
      return Claim{.replay = true, .reply = record->reply};
    }
  }
  Record record;
  record.key = key;
  record.request = request;
  record.names = names;
  record.started_at = clock_.WallNowRfc3339();
  if (Status written = ReplaceFileDurably(path, RecordToJson(record).dump() + "\n", 0600); !written.ok()) {
    release();
    return written.Annotate("Idempotency-Key '" + key + "'");
  }
  return Claim{};
}

Status IdempotencyStore::Finish(const std::string& key, const StoredReply& reply) {
  const std::string path = PathOf(key);
  Status written;
  {
    Result<Record> record = ReadRecord(path);
    if (!record.ok()) {
      written = record.status();
    } else {
      record->done = true;
      record->reply = reply;
      record->finished_unix_ms = UnixMillis(clock_.WallNow());
      written = ReplaceFileDurably(path, RecordToJson(*record).dump() + "\n", 0600);
    }
  }
  if (!written.ok()) (void)RemoveFileDurably(path);
  std::lock_guard lock(mutex_);
  in_flight_.erase(key);
  return written.Annotate("Idempotency-Key '" + key + "': recording the reply");
}

Result<std::vector<IdempotencyStore::Unfinished>> IdempotencyStore::ListUnfinished() const {
  UniqueFd dir(::open(dir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!dir) return Status::FromErrno(errno, "open", dir_);
  std::vector<DirectoryEntry> entries;
  FE_RETURN_IF_ERROR(ReadDirectory(dir.get(), entries, dir_));
  std::vector<Unfinished> unfinished;
  for (const DirectoryEntry& entry : entries) {
    if (!EndsWith(entry.name, kSuffix)) continue;  // temporary files of an interrupted write, too
    Result<Record> record = ReadRecord(JoinPath(dir_, entry.name));
    if (!record.ok()) return record.status();
    if (!record->done) unfinished.push_back({record->key, record->names, record->started_at});
  }
  return unfinished;
}

Status IdempotencyStore::Forget(const std::string& key) {
  FE_RETURN_IF_ERROR(CheckKey(key));
  return RemoveFileDurably(PathOf(key));
}

Result<size_t> IdempotencyStore::Sweep() {
  UniqueFd dir(::open(dir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!dir) return Status::FromErrno(errno, "open", dir_);
  std::vector<DirectoryEntry> entries;
  FE_RETURN_IF_ERROR(ReadDirectory(dir.get(), entries, dir_));
  const int64_t oldest = UnixMillis(clock_.WallNow() - window_);
  size_t removed = 0;
  for (const DirectoryEntry& entry : entries) {
    if (!EndsWith(entry.name, kSuffix)) continue;
    const std::string key = entry.name.substr(0, entry.name.size() - kSuffix.size());
    std::lock_guard lock(mutex_);  // not under a Begin of the same key
    if (in_flight_.contains(key)) continue;
    const std::string path = JoinPath(dir_, entry.name);
    Result<Record> record = ReadRecord(path);
    if (!record.ok() || !record->done || record->finished_unix_ms >= oldest) continue;
    FE_RETURN_IF_ERROR(RemoveFileDurably(path));
    ++removed;
  }
  return removed;
}

Result<size_t> UndoCutAttempts(IdempotencyStore& store, engine::Engine& engine) {
  Result<std::vector<IdempotencyStore::Unfinished>> unfinished = store.ListUnfinished();
  if (!unfinished.ok()) return unfinished.status();
  size_t undone = 0;
  for (const IdempotencyStore::Unfinished& attempt : *unfinished) {
    bool whole = true;
    for (const std::string& name : attempt.names) {
      Result<engine::Instance> instance = engine.Get(name);
      // Older than the attempt: not its work (a name it would have been refused).
      if (!instance.ok() || instance->created_at < attempt.started_at) continue;
      Status deleted = engine.Delete(instance->id);
      if (deleted.ok()) {
        spdlog::warn("Idempotency-Key '{}': removed {} ('{}'), made by an attempt a crash cut", attempt.key,
                     instance->id, name);
      } else {
        whole = false;
        spdlog::error("Idempotency-Key '{}': {} ('{}') of an attempt a crash cut stays: {}", attempt.key, instance->id,
                      name, deleted.ToString());
      }
    }
    if (!whole) continue;
    FE_RETURN_IF_ERROR(store.Forget(attempt.key));
    ++undone;
  }
  return undone;
}

}  // namespace fe::engine::forkd
