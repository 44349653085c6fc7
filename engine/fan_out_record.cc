#include "engine/fan_out_record.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>

#include <nlohmann/json.hpp>

#include "base/atomic_file.h"
#include "base/fs_util.h"
#include "base/log.h"
#include "base/unique_fd.h"

namespace fe::engine {
namespace {

using Json = nlohmann::json;
constexpr std::string_view kSuffix = ".json";

}  // namespace

Result<FanOutRecord> FanOutRecord::Begin(const std::string& dir, std::vector<std::string> member_ids) {
  if (member_ids.empty()) return Status::InvalidArgument("a fan-out record needs members");
  FE_RETURN_IF_ERROR(MakeDirectories(dir, 0700));
  const std::string path = JoinPath(dir, member_ids.front() + std::string(kSuffix));
  const Json record = {{"members", member_ids}};
  // Durable on its own: it must be on disk before any member's intent can be.
  FE_RETURN_IF_ERROR(ReplaceFileDurably(path, record.dump() + "\n", 0600).Annotate("fan-out record"));
  return FanOutRecord(path);
}

FanOutRecord::FanOutRecord(FanOutRecord&& other) noexcept : path_(std::exchange(other.path_, {})) {}

FanOutRecord::~FanOutRecord() {
  if (path_.empty()) return;
  if (Status removed = Remove(path_); !removed.ok()) {
    LogWarning("fan-out record left behind (recovery removes it): " + removed.ToString());
  }
}

Status FanOutRecord::Finish() {
  FE_RETURN_IF_ERROR(Remove(path_));
  path_.clear();
  return Status::Ok();
}

Status FanOutRecord::Remove(const std::string& path) { return RemoveFileDurably(path); }

Result<std::vector<FanOutRecord::Unfinished>> FanOutRecord::List(const std::string& dir) {
  std::vector<Unfinished> records;
  UniqueFd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd) {
    if (errno == ENOENT) return records;
    return Status::FromErrno(errno, "open", dir);
  }
  std::vector<DirectoryEntry> entries;
  FE_RETURN_IF_ERROR(ReadDirectory(fd.get(), entries, dir));
  for (const DirectoryEntry& entry : entries) {
    if (entry.name.size() <= kSuffix.size() || entry.name.substr(entry.name.size() - kSuffix.size()) != kSuffix) {
      continue;
    }
    Unfinished record{JoinPath(dir, entry.name), {}, {}};
    Result<std::string> text = ReadSmallFile(record.path);
    Json json = text.ok() ? Json::parse(*text, nullptr, /*allow_exceptions=*/false) : Json();
    const auto members = json.is_object() ? json.find("members") : json.end();
    if (!json.is_object() || members == json.end() || !members->is_array()) {
      record.unreadable = text.ok() ? "not a fan-out record" : text.status().ToString();
    } else {
      for (const Json& id : *members) {
        if (id.is_string() && IsSingleComponent(id.get<std::string>()))
          record.member_ids.push_back(id.get<std::string>());
      }
    }
    records.push_back(std::move(record));
  }
  return records;
}

}  // namespace fe::engine
