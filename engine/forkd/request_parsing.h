// Strict parsing of request bodies: a body is one JSON object, every field has one type, and a field
// the API does not know is an error (a typo such as "from_runing" must not silently fork a stopped
// copy). Errors are InvalidArgument naming the field. Value checks that belong to the engine (name
// syntax, count range, states a source allows) stay in the engine, so they hold for every caller.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/status.h"
#include "engine/engine.h"
#include "engine/pools/pool.h"

namespace fe::engine::forkd {

// POST /v1/instances: {"name","hypervisor" (required), "import_dir","state","vcpus","attached_volumes",
// "template"}. `node` (when given) receives the optional "node" field: the node a router was asked to
// create on, which a forkd accepts only when it names itself. `upload` receives the optional "upload"
// field: a complete upload to import as a replica of another node's template (not with import_dir).
Result<engine::CreateRequest> ParseCreateRequest(std::string_view body, std::string* node = nullptr,
                                                 std::string* upload = nullptr);

// POST /v1/instances/{id}/fork: {"name" (required), "from_running","target_state","count"}.
Result<engine::ForkRequest> ParseForkRequest(std::string_view body);

// POST /v1/pools: {"name","template" (required), "member_state" (default Standby),"min_size","max_size"}.
Result<engine::pools::PoolSpec> ParsePoolSpec(std::string_view body);

// POST /v1/pools/{name}/acquire: {"name","no_wait","ttl_s","idle_standby_s"}, all optional; an empty body is the
// defaults.
Result<engine::pools::AcquireRequest> ParseAcquireRequest(std::string_view body);

// Bodies of start/stop/standby/restore: empty or an empty object.
Status ParseEmptyBody(std::string_view body);

// The value of the query parameter `name`; nullopt when absent.
std::optional<std::string> QueryValue(const std::vector<std::pair<std::string, std::string>>& query,
                                      std::string_view name);
// PATCH /v1/instances/{id}: {"ttl_s": N|null, "idle_standby_s": N, "labels": {"k": "v"|null}}.
Result<engine::InstanceUpdate> ParseInstanceUpdate(std::string_view body);

// POST /v1/instances/{id}/restore: an empty body or {} (restore from its own snapshot directory), or
// {"snapshot": ID} (roll back to that snapshot): the id, or "".
Result<std::string> ParseRestoreRequest(std::string_view body);

// POST /v1/instances/{id}/snapshots: {"name" (required), "labels", "preflush"}.
Result<engine::SnapshotRequest> ParseSnapshotRequest(std::string_view body);

// GET /v1/instances?label=k=v&label=k&state=&parent=&ancestor=&limit=&page_token= (engine/instance_query.h):
// labels all match; limit 1..1000 (absent: every match); InvalidArgument naming the parameter, also for
// one the listing does not know.
Result<engine::InstanceQuery> ParseInstanceQuery(const std::vector<std::pair<std::string, std::string>>& query);
// GET /v1/snapshots?label=&instance=&limit=&page_token=: the same, for snapshots (instance: whose).
Result<engine::InstanceQuery> ParseSnapshotQuery(const std::vector<std::pair<std::string, std::string>>& query);
// The query's parent and ancestor, when they name a living instance, become its id (the listing
// matches ids); an id is kept as given, so a deleted instance's id still matches its forks and
// snapshots.
void ResolveInstanceNames(const engine::Engine& engine, engine::InstanceQuery& query);

// A decimal number in [0, max] from the query parameter `name` (InvalidArgument naming it).
Result<uint64_t> QueryNumber(const std::string& text, std::string_view name, uint64_t max);

}  // namespace fe::engine::forkd
