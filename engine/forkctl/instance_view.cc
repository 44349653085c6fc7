#include "engine/forkctl/instance_view.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <map>
#include <set>
#include <string_view>
#include <vector>

#include "engine/forkctl/json_fields.h"
#include "engine/forkctl/table.h"

namespace fe::engine::forkctl {
namespace {

using nlohmann::json;

std::string Ip(const json& instance) { return Text(Field(instance, "identity"), "ipv4"); }

// "fan-2" < "fan-10": digit runs compare by value, everything else byte by byte.
bool NaturalLess(const std::string& a, const std::string& b) {
  size_t i = 0, j = 0;
  while (i < a.size() && j < b.size()) {
    if (std::isdigit(static_cast<unsigned char>(a[i])) && std::isdigit(static_cast<unsigned char>(b[j]))) {
      size_t i_end = a.find_first_not_of("0123456789", i), j_end = b.find_first_not_of("0123456789", j);
      std::string_view x = std::string_view(a).substr(i, i_end == std::string::npos ? std::string::npos : i_end - i);
      std::string_view y = std::string_view(b).substr(j, j_end == std::string::npos ? std::string::npos : j_end - j);
      x.remove_prefix(std::min(x.find_first_not_of('0'), x.size()));
      y.remove_prefix(std::min(y.find_first_not_of('0'), y.size()));
      if (x.size() != y.size()) return x.size() < y.size();
      if (x != y) return x < y;
      i = i_end == std::string::npos ? a.size() : i_end;
      j = j_end == std::string::npos ? b.size() : j_end;
      continue;
    }
    if (a[i] != b[j]) return a[i] < b[j];
    ++i;
    ++j;
  }
  return a.size() - i < b.size() - j;
}

// Creation order; forks made by one request share a creation time and go by name.
bool CreatedBefore(const json* a, const json* b) {
  std::string a_created = Text(*a, "created_at"), b_created = Text(*b, "created_at");
  if (a_created != b_created) return a_created < b_created;
  return NaturalLess(Text(*a, "name"), Text(*b, "name"));
}

// A byte count of a Usage reply; `unknown` when the method cannot tell (null) or the reply lacks it.
std::string UsageBytes(const json& usage, const char* field, const char* unknown = "?") {
  const json& value = Field(usage, field);
  if (!value.is_number_integer() || value.get<int64_t>() < 0) return unknown;
  return FormatBytes(value.get<uint64_t>());
}

std::string TreeLabel(const json& instance) {
  return fmt::format("{}  {}  {}  {}", Text(instance, "name"), Text(instance, "id"), Text(instance, "state"),
                     Ip(instance));
}

bool IsSnapshotLink(const json& link) { return Text(link, "kind") == "snapshot"; }

// "snapshot base" for a snapshot, an instance's name otherwise.
std::string LinkName(const json& link) { return (IsSnapshotLink(link) ? "snapshot " : "") + Text(link, "name"); }

}  // namespace

json InstancesOf(const json& reply) {
  const json& instances = Field(reply, "instances");
  return instances.is_array() ? instances : json::array();
}

std::string InstancesTable(const json& instances, const json& usage) {
  using A = Table::Align;
  std::map<std::string, std::string> names;
  for (const json& instance : Elements(instances)) names[Text(instance, "id")] = Text(instance, "name");
  std::vector<Table::Column> columns{{"NAME"}, {"ID"}, {"STATE"}, {"HYPERVISOR"}, {"IP"}, {"PARENT"}, {"CREATED"}};
  const bool with_usage = usage.is_object();
  if (with_usage)
    columns.insert(columns.end(), {{"ALLOCATED", A::kRight}, {"SHARED", A::kRight}, {"EXCLUSIVE", A::kRight}});
  Table table(columns);
  for (const json& instance : Elements(instances)) {
    std::string parent = Text(instance, "parent_id");
    if (auto it = names.find(parent); it != names.end()) parent = it->second;
    std::vector<std::string> row{Text(instance, "name"),       Text(instance, "id"), Text(instance, "state"),
                                 Text(instance, "hypervisor"), Ip(instance),         parent,
                                 Text(instance, "created_at")};
    if (with_usage) {
      const json& measured = Field(usage, Text(instance, "id").c_str());
      for (const char* field : {"allocated_bytes", "shared_bytes", "exclusive_bytes"})
        row.push_back(UsageBytes(measured, field));
    }
    table.AddRow(std::move(row));
  }
  return table.Render();
}

std::string InstanceSummary(const json& instance) {
  return fmt::format("{} ({}): {}\n", Text(instance, "name"), Text(instance, "id"), Text(instance, "state"));
}

std::string UsageDetails(const json& usage) {
  auto bytes = [&usage](const char* field) { return UsageBytes(usage, field, "unknown"); };
  return fmt::format("{:<12}{}\n{:<12}{}\n{:<12}{}\n{:<12}{}\n{:<12}{}\n", "logical", bytes("logical_bytes"),
                     "allocated", bytes("allocated_bytes"), "shared", bytes("shared_bytes"), "exclusive",
                     bytes("exclusive_bytes"), "measured by", Text(usage, "method"));
}

std::string InstanceDetails(const json& instance) {
  const json& identity = Field(instance, "identity");
  const json& storage = Field(instance, "storage");
  std::string out;
  auto line = [&out](std::string_view key, const std::string& value) { out += fmt::format("{:<12}{}\n", key, value); };
  line("name", Text(instance, "name"));
  line("id", Text(instance, "id"));
  line("state", Text(instance, "state"));
  line("hypervisor", Text(instance, "hypervisor"));
  line("vcpus", Text(instance, "vcpus"));
  line("ip",
       fmt::format("{}/{} via {}", Text(identity, "ipv4"), Text(identity, "prefix_length"), Text(identity, "gateway")));
  line("mac", Text(identity, "mac"));
  line("tap", Text(identity, "tap_device"));
  line("vsock cid", Text(identity, "vsock_cid"));
  line("storage", fmt::format("{} volume {}", Text(storage, "backend"), Text(storage, "volume")));
  line("parent", Text(instance, "parent_id"));
  line("forked at", Text(instance, "forked_at"));
  std::string ancestry;
  for (const json& link : Elements(Field(instance, "ancestors"))) {
    ancestry += (ancestry.empty() ? "" : " > ") + LinkName(link) + " (" + Text(link, "id") + ")";
  }
  if (!ancestry.empty()) line("ancestry", ancestry);
  std::string labels;
  if (const json& map = Field(instance, "labels"); map.is_object()) {
    for (const auto& [key, value] : map.items()) {
      labels += (labels.empty() ? "" : ", ") + key + "=" + (value.is_string() ? value.get<std::string>() : "?");
    }
  }
  if (!labels.empty()) line("labels", labels);
  line("created", Text(instance, "created_at"));
  line("updated", Text(instance, "updated_at"));
  for (const json& volume : Elements(Field(instance, "attached_volumes"))) {
    const json& read_only = Field(volume, "read_only");
    line("volume", fmt::format("{} ({})", Text(volume, "path"),
                               read_only.is_boolean() && !read_only.get<bool>() ? "writable" : "read-only"));
  }
  const json& process = Field(instance, "process");
  if (process.is_object()) {
    line("process", fmt::format("pid {}, api socket {}", Text(process, "pid"), Text(process, "api_socket")));
  }
  const json& memory = Field(instance, "memory");
  if (memory.is_object()) {
    std::string mode = Text(memory, "mode");
    if (mode == "shared") mode += fmt::format(" with {} ({})", Text(memory, "shared_from"), Text(memory, "file"));
    line("memory", mode);
    const json& resident = Field(memory, "resident");
    if (resident.is_object()) {
      line("resident", fmt::format("private {}, shared {}, pss {}", UsageBytes(resident, "private_bytes"),
                                   UsageBytes(resident, "shared_bytes"), UsageBytes(resident, "pss_bytes")));
    }
  }
  if (const json& usage = Field(instance, "usage"); usage.is_object()) out += UsageDetails(usage);
  return out;
}

std::string ForkTree(const json& instances) {
  std::set<std::string> ids;
  std::map<std::string, std::vector<const json*>> children;  // parent id -> forks, in list order
  for (const json& instance : Elements(instances)) ids.insert(Text(instance, "id"));
  std::vector<const json*> roots;
  std::map<std::string, std::string> via;  // id -> the deleted ancestors between it and where it hangs
  for (const json& instance : Elements(instances)) {
    // Under its parent; when that was deleted, under its nearest living ancestor (from its ancestry).
    std::string parent = Text(instance, "parent_id");
    std::vector<std::string> skipped;
    bool skipped_an_instance = false;  // not only snapshots, which are not instances and not listed
    const json& ancestors = Field(instance, "ancestors");
    if (parent != "-" && !ids.count(parent) && ancestors.is_array()) {
      for (auto link = ancestors.rbegin(); link != ancestors.rend(); ++link) {
        if (ids.count(Text(*link, "id"))) {
          parent = Text(*link, "id");
          break;
        }
        skipped.push_back(LinkName(*link));
        skipped_an_instance |= !IsSnapshotLink(*link);
      }
    }
    if (parent != "-" && ids.count(parent) && parent != Text(instance, "id")) {
      children[parent].push_back(&instance);
      std::string names;
      for (auto name = skipped.rbegin(); name != skipped.rend(); ++name) names += (names.empty() ? "" : ", ") + *name;
      if (!skipped.empty()) via[Text(instance, "id")] = names + (skipped_an_instance ? ", since deleted" : "");
    } else {
      roots.push_back(&instance);
    }
  }
  auto label = [&via](const json& instance) {
    auto deleted = via.find(Text(instance, "id"));
    return TreeLabel(instance) + (deleted == via.end() ? "" : "  (via " + deleted->second + ")");
  };
  std::stable_sort(roots.begin(), roots.end(), CreatedBefore);
  for (auto& [parent, forks] : children) std::stable_sort(forks.begin(), forks.end(), CreatedBefore);
  std::string out;
  std::set<std::string> printed;  // a parent_id cycle (never made by forkd) must not loop forever
  auto walk = [&](auto& self, const json& instance, const std::string& prefix) -> void {
    std::string id = Text(instance, "id");
    if (!printed.insert(id).second) return;
    const std::vector<const json*>& forks = children[id];
    for (size_t i = 0; i < forks.size(); ++i) {
      bool last = i + 1 == forks.size();
      out += prefix + (last ? "└── " : "├── ") + label(*forks[i]) + "\n";
      self(self, *forks[i], prefix + (last ? "    " : "│   "));
    }
  };
  for (const json* root : roots) {
    std::string parent = Text(*root, "parent_id");
    const json& ancestors = Field(*root, "ancestors");
    std::string from = parent + ", since deleted";
    if (ancestors.is_array() && !ancestors.empty() && IsSnapshotLink(ancestors.back()))
      from = LinkName(ancestors.back());
    out += TreeLabel(*root) + (parent == "-" ? "" : "  (forked from " + from + ")") + "\n";
    walk(walk, *root, "");
  }
  for (const json& instance : Elements(instances)) {  // members of a cycle have no root above them
    if (!printed.count(Text(instance, "id"))) out += TreeLabel(instance) + "  (parent link cycle)\n";
  }
  return out;
}

std::string ForksTable(const json& reply, bool with_header) {
  using A = Table::Align;
  // Fixed minimum widths: `forkctl fork --no-header` rows of successive calls line up under one header.
  Table table({{"NAME", A::kLeft, 16},
               {"ID", A::kLeft, 18},
               {"STATE", A::kLeft, 7},
               {"IP", A::kLeft, 12},
               {"MECHANISM", A::kLeft, 9},
               {"TOTAL ms", A::kRight, 9},
               {"LOCK", A::kRight, 7},
               {"STANDBY", A::kRight, 7},
               {"CLONE", A::kRight, 8},
               {"REWRITE", A::kRight, 7},
               {"METADATA", A::kRight, 8},
               {"RESTORE", A::kRight, 7},
               {"SHARED", A::kRight, 10},
               {"COPIED", A::kRight, 9}});
  for (const json& fork : Elements(Field(reply, "forks"))) {
    const json& instance = Field(fork, "instance");
    const json& phases = Field(fork, "phases");
    auto ms = [&phases](const char* key) { return FormatMillis(Integer(phases, key)); };
    table.AddRow({Text(instance, "name"), Text(instance, "id"), Text(instance, "state"), Ip(instance),
                  Text(fork, "mechanism"), ms("total_us"), ms("lock_wait_us"), ms("source_standby_us"), ms("clone_us"),
                  ms("rewrite_us"), ms("metadata_us"), ms("restore_us"),
                  FormatBytes(static_cast<uint64_t>(Integer(fork, "shared_bytes"))),
                  FormatBytes(static_cast<uint64_t>(Integer(fork, "copied_bytes")))});
  }
  return table.Render(with_header);
}

}  // namespace fe::engine::forkctl
