// A fan-out (a fork with count > 1) is all or nothing, also across a crash. Before any member's
// intent is written, a record naming every member's id is written durably to
// <data_root>/groups/<first member's id>.json; it is removed (durably) only once every member is made
// and brought to its target state, just before the forks are published and answered. A record that
// survives a crash marks a fan-out that was never answered: recovery removes every member it lists
// (engine/recovery.cc), whatever state each reached.
#pragma once

#include <string>
#include <vector>

#include "base/status.h"

namespace fe::engine {

class FanOutRecord {
 public:
  // Writes the record for `member_ids` (at least one) in `dir` (created when missing).
  static Result<FanOutRecord> Begin(const std::string& dir, std::vector<std::string> member_ids);
  FanOutRecord(FanOutRecord&& other) noexcept;
  FanOutRecord(const FanOutRecord&) = delete;
  FanOutRecord& operator=(const FanOutRecord&) = delete;
  FanOutRecord& operator=(FanOutRecord&&) = delete;
  // Removes the record if Finish() did not (best effort: a record left behind only makes recovery
  // look for members that are already gone).
  ~FanOutRecord();

  // Every member is made: removes the record durably. After a failure the fan-out must be undone.
  Status Finish();

  const std::string& path() const { return path_; }

  // The member ids of every record in `dir`, by record path. A record that cannot be read is
  // returned with no members and the reason in `unreadable` (kept, for an operator to look at).
  struct Unfinished {
    std::string path;
    std::vector<std::string> member_ids;
    std::string unreadable;
  };
  static Result<std::vector<Unfinished>> List(const std::string& dir);
  // Removes the record at `path` durably.
  static Status Remove(const std::string& path);

 private:
  explicit FanOutRecord(std::string path) : path_(std::move(path)) {}
  std::string path_;  // empty once finished or moved from
};

}  // namespace fe::engine
