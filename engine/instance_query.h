// Listing instances at scale: filters (labels, state, parent, ancestor) and stable pagination.
//
// Order: by creation time, then id (what GET /v1/instances always returned). A page ends at a cursor,
// the (created_at, id) of its last instance, and the next page starts after it. The order does not
// depend on what else exists, so a listing paged while instances come and go never repeats one and
// never skips one that existed throughout (new ones sort last: their created_at is later), and the
// router merges the nodes' pages by the same key (engine/router). The cursor travels as an opaque
// page token (hex of its two fields).
#pragma once

#include <compare>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"
#include "engine/instance.h"
#include "engine/labels.h"

namespace fe::engine {

struct PageCursor {
  std::string created_at;
  std::string id;
  auto operator<=>(const PageCursor&) const = default;
};
PageCursor CursorOf(const Instance& instance);
std::string EncodePageToken(const PageCursor& cursor);
// InvalidArgument naming the token when it is not one EncodePageToken made.
Result<PageCursor> DecodePageToken(std::string_view token);

inline constexpr size_t kMaxPageSize = 1000;

struct InstanceQuery {
  bool snapshots = false;             // list snapshots (Instance::snapshot_mark) instead of instances
  std::vector<LabelSelector> labels;  // all must match
  std::optional<InstanceState> state;
  std::string parent;    // forks of this id only (for snapshots: the instance they are of)
  std::string ancestor;  // instances descended from this id (it may be deleted)
  // Only instances with a deadline or an idle standby: the lifecycle keeper's pass copies those, not
  // every instance, under the engine's lock once a second.
  bool with_policy = false;
  std::optional<PageCursor> after;
  size_t limit = 0;  // 0: every match
  // Whether `instance` passes the filters (not the page bounds).
  bool Matches(const Instance& instance) const;
};

struct InstancePage {
  std::vector<Instance> instances;
  std::optional<PageCursor> next;  // set when more matches follow the last one
};

}  // namespace fe::engine
