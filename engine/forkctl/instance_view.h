// Human renderings of forkd's JSON replies (the shapes are the API contract's): instance lists,
// one instance, fork results, the fork tree, storage. Pure functions of the JSON; fields that are
// missing or of another type render as "-" rather than failing, so an older or newer forkd still
// prints.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

namespace fe::engine::forkctl {

// The "instances" array of a GET /v1/instances reply (an empty array when there is none).
nlohmann::json InstancesOf(const nlohmann::json& reply);

// NAME ID STATE HYPERVISOR IP PARENT CREATED, one row per element of `instances` (an array);
// PARENT is the parent's name when it is in the list, else its id. With `usage` (an object: id ->
// Usage reply), ALLOCATED SHARED EXCLUSIVE follow ("?" for an instance missing from it).
std::string InstancesTable(const nlohmann::json& instances, const nlohmann::json& usage = nullptr);

// "name (id): state\n".
std::string InstanceSummary(const nlohmann::json& instance);

// One "key: value" line per field of an instance, identity and process included; with a "usage"
// member (forkctl show adds GET /v1/instances/{id}/usage there), its UsageDetails follow.
std::string InstanceDetails(const nlohmann::json& instance);
// `forkctl usage`: a Usage reply (GET /v1/instances/{id}/usage) as lines; "unknown" where the method
// cannot tell sharing.
std::string UsageDetails(const nlohmann::json& usage);

// The fork tree from the parent_id links of `instances` (an array, in creation order): roots are
// instances without a parent or whose parent is gone (then said so); siblings in creation order, and
// by name (digit runs by value: fan-2 before fan-10) when created in the same millisecond.
//   demo-template  i-…  Standby  10.100.0.2
//   ├── demo-1  i-…  Standby  10.100.0.3
//   │   └── demo-1-a  i-…  Stopped  10.100.0.5
//   └── demo-2  i-…  Standby  10.100.0.4
std::string ForkTree(const nlohmann::json& instances);

// One row per element of a fork reply's "forks": name, id, state, IP, mechanism, total and phase
// times in ms, shared bytes. Columns have fixed minimum widths, so the rows of successive calls
// (with_header false after the first) line up.
std::string ForksTable(const nlohmann::json& reply, bool with_header);

}  // namespace fe::engine::forkctl
