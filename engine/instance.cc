// Instance metadata as JSON, instance names, ids and timestamps.
#include "engine/instance.h"

#include <sys/random.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <ctime>

#include "base/json_fields.h"

namespace fe::engine {
namespace {

using Json = nlohmann::json;

constexpr size_t kMaxNameLength = 63;

Status ReadIdentity(const Json& object, std::string_view origin, hypervisor::NetworkIdentity& identity) {
  JsonFields reader(object, std::string(origin), "identity.");
  FE_RETURN_IF_ERROR(reader.String("tap_device", identity.tap_device, JsonFields::kOptional));
  FE_RETURN_IF_ERROR(reader.String("mac", identity.mac, JsonFields::kOptional));
  FE_RETURN_IF_ERROR(reader.String("ipv4", identity.ipv4, JsonFields::kOptional));
  FE_RETURN_IF_ERROR(reader.Number("prefix_length", identity.prefix_length, JsonFields::kOptional, 0, 32));
  FE_RETURN_IF_ERROR(reader.String("gateway", identity.gateway, JsonFields::kOptional));
  FE_RETURN_IF_ERROR(reader.Number("vsock_cid", identity.vsock_cid, JsonFields::kOptional, 0, UINT32_MAX));
  return Status::Ok();
}

Status ReadAttachedVolumes(const JsonFields& reader, std::vector<AttachedVolume>& out) {
  const Json* list = reader.Find("attached_volumes");
  if (list == nullptr || list->is_null()) return Status::Ok();
  FE_RETURN_IF_ERROR(reader.Array("attached_volumes", JsonFields::kOptional).status());
  for (size_t i = 0; i < list->size(); ++i) {
    const Json& item = (*list)[i];
    std::string field = "attached_volumes[" + std::to_string(i) + "]";
    if (!item.is_object()) return reader.Fail(field, "expected an object, found " + std::string(JsonTypeName(item)));
    JsonFields volume_reader = reader.Nested(item, field);
    AttachedVolume volume;
    FE_RETURN_IF_ERROR(volume_reader.String("path", volume.path, JsonFields::kRequired));
    FE_RETURN_IF_ERROR(volume_reader.Bool("read_only", volume.read_only));
    out.push_back(std::move(volume));
  }
  return Status::Ok();
}

// Absent in metadata written before ancestry was kept: none (parent_id still names the parent).
Status ReadAncestors(const JsonFields& reader, std::vector<Ancestor>& out) {
  const Json* list = reader.Find("ancestors");
  if (list == nullptr || list->is_null()) return Status::Ok();
  FE_RETURN_IF_ERROR(reader.Array("ancestors", JsonFields::kOptional).status());
  if (list->size() > kMaxAncestors) {
    return reader.Fail("ancestors", std::to_string(list->size()) + " links, at most " + std::to_string(kMaxAncestors));
  }
  for (size_t i = 0; i < list->size(); ++i) {
    const Json& item = (*list)[i];
    const std::string field = "ancestors[" + std::to_string(i) + "]";
    if (!item.is_object()) return reader.Fail(field, "expected an object, found " + std::string(JsonTypeName(item)));
    JsonFields link_reader = reader.Nested(item, field);
    Ancestor ancestor;
    FE_RETURN_IF_ERROR(link_reader.String("id", ancestor.id, JsonFields::kRequired));
    FE_RETURN_IF_ERROR(link_reader.String("name", ancestor.name, JsonFields::kRequired));
    FE_RETURN_IF_ERROR(link_reader.String("forked_at", ancestor.forked_at, JsonFields::kRequired));
    // Absent in links written before snapshots existed: an instance.
    std::string kind = "instance";
    FE_RETURN_IF_ERROR(link_reader.String("kind", kind, JsonFields::kOptional));
    if (kind != "instance" && kind != "snapshot") {
      return link_reader.Fail("kind", "'" + kind + "' is neither 'instance' nor 'snapshot'");
    }
    ancestor.snapshot = kind == "snapshot";
    out.push_back(std::move(ancestor));
  }
  return Status::Ok();
}

Status ReadProcess(const Json& object, std::string_view origin, vm::ProcessRecord& process) {
  JsonFields reader(object, std::string(origin), "process.");
  FE_RETURN_IF_ERROR(reader.Number("pid", process.pid, JsonFields::kRequired, 1, INT32_MAX));
  FE_RETURN_IF_ERROR(reader.Number("start_time", process.start_time, JsonFields::kRequired, 0, UINT64_MAX));
  FE_RETURN_IF_ERROR(reader.String("api_socket", process.api_socket, JsonFields::kOptional));
  return Status::Ok();
}

bool IsLabelChar(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'; }

}  // namespace

std::string_view InstanceStateName(InstanceState state) {
  switch (state) {
    case InstanceState::kCreating: return "Creating";
    case InstanceState::kStopped: return "Stopped";
    case InstanceState::kStandby: return "Standby";
    case InstanceState::kRunning: return "Running";
  }
  return "Unknown";
}

Result<InstanceState> ParseInstanceState(std::string_view text) {
  for (InstanceState state :
       {InstanceState::kCreating, InstanceState::kStopped, InstanceState::kStandby, InstanceState::kRunning}) {
    if (text == InstanceStateName(state)) return state;
  }
  return Status::InvalidArgument("unknown instance state '" + std::string(text) +
                                 "' (expected Creating, Stopped, Standby or Running)");
}

Result<InstanceState> ParseRequestedState(std::string_view text) {
  for (InstanceState state : {InstanceState::kStopped, InstanceState::kStandby, InstanceState::kRunning}) {
    if (text == InstanceStateName(state)) return state;
  }
  // Built by appending: GCC 12 warns falsely (-Wrestrict) on "'" + std::string(...) at -O3.
  std::string message = "'";
  message.append(text).append("' is not a state to ask for (expected Stopped, Standby or Running)");
  return Status::InvalidArgument(std::move(message));
}

std::string_view MemoryModeName(MemoryMode mode) { return mode == MemoryMode::kShared ? "shared" : "private"; }

Result<MemoryMode> ParseMemoryMode(std::string_view text) {
  if (text == "shared") return MemoryMode::kShared;
  if (text == "private") return MemoryMode::kPrivate;
  std::string message = "'";
  message.append(text).append("' is not a memory mode (expected \"shared\" or \"private\")");
  return Status::InvalidArgument(std::move(message));
}

std::string_view IdentityChannelKindName(hypervisor::IdentityChannel::Kind kind) {
  switch (kind) {
    case hypervisor::IdentityChannel::Kind::kVirtioSerialSocket: return "virtio-serial";
    case hypervisor::IdentityChannel::Kind::kHybridVsock: return "hybrid-vsock";
    case hypervisor::IdentityChannel::Kind::kNone: break;
  }
  return "none";
}

nlohmann::json InstanceToJson(const Instance& instance) {
  Json json;
  json["id"] = instance.id;
  json["name"] = instance.name;
  json["hypervisor"] = instance.hypervisor;
  json["state"] = std::string(InstanceStateName(instance.state));
  const hypervisor::NetworkIdentity& identity = instance.identity;
  json["identity"] = {
      {"tap_device", identity.tap_device},       {"mac", identity.mac},         {"ipv4", identity.ipv4},
      {"prefix_length", identity.prefix_length}, {"gateway", identity.gateway}, {"vsock_cid", identity.vsock_cid}};
  json["storage"] = {{"backend", instance.storage_backend}, {"volume", instance.volume}};
  json["parent_id"] = instance.parent_id;
  json["forked_at"] = instance.forked_at;
  json["created_at"] = instance.created_at;
  json["updated_at"] = instance.updated_at;
  json["vcpus"] = instance.vcpus;
  if (!instance.pool.empty()) json["pool"] = instance.pool;
  if (instance.template_mark) {
    json["template"] = {
        {"content_hash", instance.template_mark->content_hash},
        {"replica_of",
         instance.template_mark->replica_of.empty() ? Json(nullptr) : Json(instance.template_mark->replica_of)}};
  }
  if (instance.snapshot_mark) {
    json["snapshot"] = {{"name", instance.snapshot_mark->name},
                        {"instance_id", instance.snapshot_mark->instance_id},
                        {"instance_name", instance.snapshot_mark->instance_name},
                        {"taken_in", InstanceStateName(instance.snapshot_mark->taken_in)}};
  }
  json["labels"] = LabelsToJson(instance.labels);
  auto optional_text = [](const std::string& text) { return text.empty() ? Json(nullptr) : Json(text); };
  json["lifecycle"] = {{"expires_at", optional_text(instance.lifecycle.expires_at)},
                       {"idle_standby_s", instance.lifecycle.idle_standby_s},
                       {"stood_by_idle_at", optional_text(instance.lifecycle.stood_by_idle_at)}};
  Json ancestors = Json::array();
  for (const Ancestor& ancestor : instance.ancestors) {
    ancestors.push_back({{"id", ancestor.id},
                         {"name", ancestor.name},
                         {"forked_at", ancestor.forked_at},
                         {"kind", ancestor.snapshot ? "snapshot" : "instance"}});
  }
  json["ancestors"] = std::move(ancestors);
  Json volumes = Json::array();
  for (const AttachedVolume& volume : instance.attached_volumes) {
    volumes.push_back({{"path", volume.path}, {"read_only", volume.read_only}});
  }
  json["attached_volumes"] = std::move(volumes);
  if (instance.process) {
    json["process"] = {{"pid", instance.process->pid},
                       {"start_time", instance.process->start_time},
                       {"api_socket", instance.process->api_socket}};
  } else {
    json["process"] = nullptr;
  }
  const hypervisor::IdentityChannel& channel = instance.identity_channel;
  if (!channel.empty()) {
    json["identity_channel"] = {
        {"kind", IdentityChannelKindName(channel.kind)}, {"path", channel.path}, {"port", channel.port}};
  }
  if (!instance.guest_mac.empty()) json["guest_mac"] = instance.guest_mac;
  json["identity_generation"] = instance.identity_generation;
  if (instance.shared_memory) {
    json["memory"] = {{"mode", MemoryModeName(MemoryMode::kShared)},
                      {"shared_from", instance.shared_memory->instance_id},
                      {"file", instance.shared_memory->file}};
  } else {
    json["memory"] = {{"mode", MemoryModeName(MemoryMode::kPrivate)}, {"shared_from", nullptr}, {"file", nullptr}};
  }
  return json;
}

Result<Instance> InstanceFromJson(const nlohmann::json& json, std::string_view origin) {
  if (!json.is_object()) return Status::InvalidArgument(std::string(origin) + ": expected a JSON object");
  JsonFields reader(json, std::string(origin));
  Instance instance;
  FE_RETURN_IF_ERROR(reader.String("id", instance.id, JsonFields::kRequired));
  if (instance.id.empty()) return reader.Fail("id", "empty");
  FE_RETURN_IF_ERROR(reader.String("name", instance.name, JsonFields::kRequired));
  if (Status valid = ValidateInstanceName(instance.name); !valid.ok()) return reader.Fail("name", valid.message());
  FE_RETURN_IF_ERROR(reader.String("hypervisor", instance.hypervisor, JsonFields::kRequired));
  std::string state;
  FE_RETURN_IF_ERROR(reader.String("state", state, JsonFields::kRequired));
  Result<InstanceState> parsed_state = ParseInstanceState(state);
  if (!parsed_state.ok()) return reader.Fail("state", parsed_state.status().message());
  instance.state = *parsed_state;

  Result<const Json*> identity = reader.Object("identity", JsonFields::kRequired);
  if (!identity.ok()) return identity.status();
  FE_RETURN_IF_ERROR(ReadIdentity(**identity, origin, instance.identity));

  Result<const Json*> storage = reader.Object("storage", JsonFields::kRequired);
  if (!storage.ok()) return storage.status();
  JsonFields storage_reader = reader.Nested(**storage, "storage");
  FE_RETURN_IF_ERROR(storage_reader.String("backend", instance.storage_backend, JsonFields::kRequired));
  FE_RETURN_IF_ERROR(storage_reader.String("volume", instance.volume, JsonFields::kRequired));
  if (instance.volume.empty()) return storage_reader.Fail("volume", "empty");

  FE_RETURN_IF_ERROR(reader.String("parent_id", instance.parent_id, JsonFields::kOptional));
  FE_RETURN_IF_ERROR(reader.String("forked_at", instance.forked_at, JsonFields::kOptional));
  FE_RETURN_IF_ERROR(reader.String("created_at", instance.created_at, JsonFields::kRequired));
  FE_RETURN_IF_ERROR(reader.String("updated_at", instance.updated_at, JsonFields::kOptional));
  FE_RETURN_IF_ERROR(reader.Number("vcpus", instance.vcpus, JsonFields::kOptional, 1, 4096));
  FE_RETURN_IF_ERROR(reader.String("pool", instance.pool, JsonFields::kOptional));
  Result<const Json*> template_mark = reader.Object("template", JsonFields::kOptional);
  if (!template_mark.ok()) return template_mark.status();
  if (*template_mark != nullptr) {
    JsonFields mark_reader = reader.Nested(**template_mark, "template");
    TemplateMark mark;
    FE_RETURN_IF_ERROR(mark_reader.String("content_hash", mark.content_hash, JsonFields::kRequired));
    if (const Json* origin = mark_reader.Find("replica_of"); origin != nullptr && !origin->is_null()) {
      FE_RETURN_IF_ERROR(mark_reader.String("replica_of", mark.replica_of, JsonFields::kRequired));
    }
    instance.template_mark = std::move(mark);
  }
  Result<const Json*> snapshot_mark = reader.Object("snapshot", JsonFields::kOptional);
  if (!snapshot_mark.ok()) return snapshot_mark.status();
  if (*snapshot_mark != nullptr) {
    JsonFields mark_reader = reader.Nested(**snapshot_mark, "snapshot");
    SnapshotMark mark;
    std::string taken_in;
    FE_RETURN_IF_ERROR(mark_reader.String("name", mark.name, JsonFields::kRequired));
    FE_RETURN_IF_ERROR(mark_reader.String("instance_id", mark.instance_id, JsonFields::kRequired));
    FE_RETURN_IF_ERROR(mark_reader.String("instance_name", mark.instance_name, JsonFields::kRequired));
    FE_RETURN_IF_ERROR(mark_reader.String("taken_in", taken_in, JsonFields::kRequired));
    Result<InstanceState> state = ParseInstanceState(taken_in);
    if (!state.ok()) return mark_reader.Fail("taken_in", state.status().message());
    mark.taken_in = *state;
    instance.snapshot_mark = std::move(mark);
  }
  FE_RETURN_IF_ERROR(ReadLabels(reader, "labels", instance.labels));
  // Absent in metadata written before lifecycle policies existed: none.
  Result<const Json*> lifecycle = reader.Object("lifecycle", JsonFields::kOptional);
  if (!lifecycle.ok()) return lifecycle.status();
  if (*lifecycle != nullptr) {
    JsonFields policy_reader = reader.Nested(**lifecycle, "lifecycle");
    for (auto [field, out] : {std::pair{"expires_at", &instance.lifecycle.expires_at},
                              std::pair{"stood_by_idle_at", &instance.lifecycle.stood_by_idle_at}}) {
      if (const Json* value = policy_reader.Find(field); value != nullptr && !value->is_null()) {
        FE_RETURN_IF_ERROR(policy_reader.String(field, *out, JsonFields::kRequired));
      }
    }
    FE_RETURN_IF_ERROR(policy_reader.Number("idle_standby_s", instance.lifecycle.idle_standby_s, JsonFields::kOptional,
                                            0, kMaxPolicySeconds));
  }
  FE_RETURN_IF_ERROR(ReadAncestors(reader, instance.ancestors));
  FE_RETURN_IF_ERROR(ReadAttachedVolumes(reader, instance.attached_volumes));

  Result<const Json*> process = reader.Object("process", JsonFields::kOptional);
  if (!process.ok()) return process.status();
  if (*process != nullptr) {
    vm::ProcessRecord record;
    FE_RETURN_IF_ERROR(ReadProcess(**process, origin, record));
    instance.process = record;
  }
  Result<const Json*> channel = reader.Object("identity_channel", JsonFields::kOptional);
  if (!channel.ok()) return channel.status();
  if (*channel != nullptr) {
    JsonFields channel_reader = reader.Nested(**channel, "identity_channel");
    std::string kind;
    FE_RETURN_IF_ERROR(channel_reader.String("kind", kind, JsonFields::kRequired));
    if (kind == IdentityChannelKindName(hypervisor::IdentityChannel::Kind::kVirtioSerialSocket)) {
      instance.identity_channel.kind = hypervisor::IdentityChannel::Kind::kVirtioSerialSocket;
    } else if (kind == IdentityChannelKindName(hypervisor::IdentityChannel::Kind::kHybridVsock)) {
      instance.identity_channel.kind = hypervisor::IdentityChannel::Kind::kHybridVsock;
    } else {
      return channel_reader.Fail("kind", "'" + kind + "' is not virtio-serial or hybrid-vsock");
    }
    FE_RETURN_IF_ERROR(channel_reader.String("path", instance.identity_channel.path, JsonFields::kRequired));
    if (instance.identity_channel.path.empty() || instance.identity_channel.path[0] != '/') {
      return channel_reader.Fail("path", "expected an absolute path");
    }
    FE_RETURN_IF_ERROR(
        channel_reader.Number("port", instance.identity_channel.port, JsonFields::kOptional, 0, UINT32_MAX));
  }
  FE_RETURN_IF_ERROR(reader.String("guest_mac", instance.guest_mac, JsonFields::kOptional));
  FE_RETURN_IF_ERROR(
      reader.Number("identity_generation", instance.identity_generation, JsonFields::kOptional, 0, UINT64_MAX));
  // Absent in metadata written before shared memory existed: private.
  Result<const Json*> memory = reader.Object("memory", JsonFields::kOptional);
  if (!memory.ok()) return memory.status();
  if (*memory != nullptr) {
    JsonFields memory_reader = reader.Nested(**memory, "memory");
    std::string mode_text;
    FE_RETURN_IF_ERROR(memory_reader.String("mode", mode_text, JsonFields::kRequired));
    Result<MemoryMode> mode = ParseMemoryMode(mode_text);
    if (!mode.ok()) return memory_reader.Fail("mode", mode.status().message());
    if (*mode == MemoryMode::kShared) {
      SharedMemory shared;
      FE_RETURN_IF_ERROR(memory_reader.String("shared_from", shared.instance_id, JsonFields::kRequired));
      FE_RETURN_IF_ERROR(memory_reader.String("file", shared.file, JsonFields::kRequired));
      instance.shared_memory = std::move(shared);
    }
  }

  if (Status valid = ValidateInstance(instance); !valid.ok()) return valid.Annotate(std::string(origin));
  return instance;
}

Status ValidateInstance(const Instance& instance) {
  auto invalid = [](std::string_view field, const std::string& why) {
    return Status::InvalidArgument("field '" + std::string(field) + "': " + why);
  };
  if (instance.id.empty() || instance.id.front() == '.' || instance.id.find('/') != std::string::npos) {
    return invalid("id", "'" + instance.id + "' is not a directory name");
  }
  if (Status name = ValidateInstanceName(instance.name); !name.ok()) return invalid("name", name.message());
  if (instance.hypervisor.empty()) return invalid("hypervisor", "empty");
  if (instance.volume.empty() || instance.volume.front() == '.' || instance.volume.find('/') != std::string::npos) {
    return invalid("storage.volume", "'" + instance.volume + "' is not a volume name");
  }
  if (instance.vcpus < 1 || instance.vcpus > kMaxVcpus) {
    return invalid("vcpus", std::to_string(instance.vcpus) + " is not 1.." + std::to_string(kMaxVcpus));
  }
  if (instance.identity.prefix_length < 0 || instance.identity.prefix_length > 32) {
    return invalid("identity.prefix_length", std::to_string(instance.identity.prefix_length) + " is not 0..32");
  }
  for (size_t i = 0; i < instance.attached_volumes.size(); ++i) {
    const std::string& path = instance.attached_volumes[i].path;
    if (path.empty() || path.front() != '/') {
      return invalid("attached_volumes[" + std::to_string(i) + "].path", "'" + path + "' is not an absolute path");
    }
  }
  if (Status labels = ValidateLabels(instance.labels); !labels.ok()) return labels;
  if (instance.ancestors.size() > kMaxAncestors) {
    return invalid("ancestors",
                   std::to_string(instance.ancestors.size()) + " links, at most " + std::to_string(kMaxAncestors));
  }
  if (!instance.ancestors.empty() && instance.ancestors.back().id != instance.parent_id) {
    return invalid("ancestors", "the last link is not the parent '" + instance.parent_id + "'");
  }
  if (instance.snapshot_mark) {
    if (Status name = ValidateInstanceName(instance.snapshot_mark->name); !name.ok()) {
      return invalid("snapshot.name", name.message());
    }
    if (instance.snapshot_mark->instance_id != instance.parent_id) {
      return invalid("snapshot.instance_id", "not the parent '" + instance.parent_id + "'");
    }
    if (instance.state == InstanceState::kRunning) return invalid("state", "a snapshot never runs");
  }
  if (instance.state == InstanceState::kRunning && !instance.process) {
    return invalid("process", "missing for a Running instance");
  }
  if (instance.process && instance.process->pid < 1) return invalid("process.pid", "not a process id");
  if (instance.shared_memory) {
    if (instance.shared_memory->file.empty() || instance.shared_memory->file.front() != '/') {
      return invalid("memory.file", "expected an absolute path");
    }
    if (instance.shared_memory->instance_id.empty() || instance.shared_memory->instance_id == instance.id) {
      return invalid("memory.shared_from", "expected the id of another instance");
    }
  }
  if (!instance.identity_channel.empty() &&
      (instance.identity_channel.path.empty() || instance.identity_channel.path.front() != '/')) {
    return invalid("identity_channel.path", "expected an absolute path");
  }
  return Status::Ok();
}

Status ValidateInstanceName(std::string_view name) {
  auto invalid = [&](std::string_view why) {
    return Status::InvalidArgument("instance name '" + std::string(name) + "' " + std::string(why) +
                                   " (a DNS label: 1 to 63 of a-z, 0-9 and '-', starting and "
                                   "ending with a letter or digit)");
  };
  if (name.empty()) return invalid("is empty");
  if (name.size() > kMaxNameLength) return invalid("is longer than 63 characters");
  for (char c : name) {
    if (!IsLabelChar(c)) return invalid("contains '" + std::string(1, c) + "'");
  }
  if (name.front() == '-' || name.back() == '-') return invalid("starts or ends with '-'");
  return Status::Ok();
}

namespace {

std::string NewId(std::string_view prefix) {
  unsigned char bytes[8];
  size_t filled = 0;
  while (filled < sizeof(bytes)) {
    ssize_t got = ::getrandom(bytes + filled, sizeof(bytes) - filled, 0);
    if (got < 0) {
      if (errno == EINTR) continue;
      // getrandom without GRND_NONBLOCK only fails on a kernel without it (< 3.17): a broken host.
      std::perror("getrandom");
      std::abort();
    }
    filled += static_cast<size_t>(got);
  }
  static constexpr char kHex[] = "0123456789abcdef";
  std::string id(prefix);
  for (unsigned char byte : bytes) {
    id.push_back(kHex[byte >> 4]);
    id.push_back(kHex[byte & 0x0f]);
  }
  return id;
}

}  // namespace

std::string NewInstanceId() { return NewId("i-"); }
std::string NewSnapshotId() { return NewId("s-"); }

}  // namespace fe::engine
