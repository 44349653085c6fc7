#include "engine/forkd/request_parsing.h"

#include <charconv>

#include <initializer_list>
#include <limits>
#include <string>

#include <nlohmann/json.hpp>

#include "base/json_fields.h"

namespace fe::engine::forkd {
namespace {

using Json = nlohmann::json;

Result<Json> ParseObject(std::string_view body, std::string_view what) {
  Json json = Json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (json.is_discarded()) return Status::InvalidArgument(std::string(what) + ": the body is not valid JSON");
  if (!json.is_object())
    return Status::InvalidArgument(std::string(what) + ": the body must be a JSON object, not " +
                                   std::string(JsonTypeName(json)));
  return json;
}

// A request body's fields: null means "the default", so it reads as absent.
JsonFields BodyFields(const Json& object) { return JsonFields(object, "", "", JsonFields::Nulls::kAreAbsent); }

Status ReadState(const JsonFields& fields, const char* name, std::optional<engine::InstanceState>* out) {
  std::string text;
  if (fields.Find(name) == nullptr) return Status::Ok();
  FE_RETURN_IF_ERROR(fields.String(name, text, JsonFields::kOptional));
  Result<engine::InstanceState> state = engine::ParseRequestedState(text);
  if (!state.ok()) return fields.Fail(name, state.status().message());
  *out = *state;
  return Status::Ok();
}

Status ReadMemoryMode(const JsonFields& fields, std::optional<engine::MemoryMode>* out) {
  std::string text;
  if (fields.Find("memory") == nullptr) return Status::Ok();
  FE_RETURN_IF_ERROR(fields.String("memory", text, JsonFields::kOptional));
  Result<engine::MemoryMode> mode = engine::ParseMemoryMode(text);
  if (!mode.ok()) return fields.Fail("memory", mode.status().message());
  *out = *mode;
  return Status::Ok();
}

Status ReadSourcePause(const JsonFields& fields, engine::SourcePause* out) {
  std::string text;
  if (fields.Find("source_pause") == nullptr) return Status::Ok();
  FE_RETURN_IF_ERROR(fields.String("source_pause", text, JsonFields::kOptional));
  if (text == "short") {
    *out = engine::SourcePause::kShort;
  } else if (text == "background") {
    *out = engine::SourcePause::kBackground;
  } else {
    return fields.Fail("source_pause", "expected \"short\" or \"background\"");
  }
  return Status::Ok();
}

Status ReadInt(const JsonFields& fields, const char* name, int* out) {
  return fields.Number(name, *out, JsonFields::kOptional, std::numeric_limits<int>::min(),
                       static_cast<uint64_t>(std::numeric_limits<int>::max()));
}

Status ParseAttachedVolumes(const JsonFields& fields, std::vector<engine::AttachedVolume>* out) {
  Result<const Json*> list = fields.Array("attached_volumes", JsonFields::kOptional);
  if (!list.ok()) return list.status();
  if (*list == nullptr) return Status::Ok();
  for (size_t i = 0; i < (*list)->size(); ++i) {
    const Json& item = (**list)[i];
    std::string field = "attached_volumes[" + std::to_string(i) + "]";
    if (!item.is_object()) return fields.Fail(field, "expected an object, found " + std::string(JsonTypeName(item)));
    JsonFields volume = fields.Nested(item, field);
    FE_RETURN_IF_ERROR(volume.RejectUnknown({"path", "read_only"}));
    engine::AttachedVolume attached;
    FE_RETURN_IF_ERROR(volume.String("path", attached.path, JsonFields::kRequired));
    FE_RETURN_IF_ERROR(volume.Bool("read_only", attached.read_only));
    out->push_back(std::move(attached));
  }
  return Status::Ok();
}

// "ttl_s" (1..ten years) and "idle_standby_s" (0..ten years, 0: never).
Status ReadPolicy(const JsonFields& fields, std::optional<int64_t>& ttl_s, int64_t& idle_standby_s) {
  if (fields.Find("ttl_s") != nullptr) {
    int64_t ttl = 0;
    FE_RETURN_IF_ERROR(fields.Integer("ttl_s", ttl, JsonFields::kRequired, 1, engine::kMaxPolicySeconds));
    ttl_s = ttl;
  }
  return fields.Integer("idle_standby_s", idle_standby_s, JsonFields::kOptional, 0, engine::kMaxPolicySeconds);
}

}  // namespace

Result<engine::InstanceUpdate> ParseInstanceUpdate(std::string_view body) {
  Result<Json> json = ParseObject(body, "update request");
  if (!json.ok()) return json.status();
  // Here null is a value: "ttl_s": null clears the deadline, a label set to null is removed.
  JsonFields fields(*json, "");
  FE_RETURN_IF_ERROR(fields.RejectUnknown({"ttl_s", "idle_standby_s", "labels"}));
  engine::InstanceUpdate update;
  if (const Json* ttl = fields.Find("ttl_s"); ttl != nullptr) {
    if (ttl->is_null()) {
      update.ttl_s = std::optional<int64_t>();
    } else {
      int64_t seconds = 0;
      FE_RETURN_IF_ERROR(fields.Integer("ttl_s", seconds, JsonFields::kRequired, 1, engine::kMaxPolicySeconds));
      update.ttl_s = std::optional<int64_t>(seconds);
    }
  }
  if (fields.Find("idle_standby_s") != nullptr) {
    int64_t seconds = 0;
    FE_RETURN_IF_ERROR(fields.Integer("idle_standby_s", seconds, JsonFields::kRequired, 0, engine::kMaxPolicySeconds));
    update.idle_standby_s = seconds;
  }
  if (const Json* labels = fields.Find("labels"); labels != nullptr) {
    if (!labels->is_object()) return fields.Fail("labels", "expected an object of strings and nulls");
    for (const auto& [key, value] : labels->items()) {
      if (value.is_null()) {
        update.labels[key] = std::nullopt;
      } else if (value.is_string()) {
        update.labels[key] = value.get<std::string>();
      } else {
        return fields.Fail("labels." + key, "expected a string or null, found " + std::string(JsonTypeName(value)));
      }
    }
  }
  return update;
}

Result<engine::CreateRequest> ParseCreateRequest(std::string_view body, std::string* node, std::string* upload) {
  Result<Json> json = ParseObject(body, "create request");
  if (!json.ok()) return json.status();
  JsonFields fields = BodyFields(*json);
  FE_RETURN_IF_ERROR(fields.RejectUnknown({"name", "hypervisor", "import_dir", "state", "vcpus", "attached_volumes",
                                           "node", "template", "upload", "labels", "ttl_s", "idle_standby_s"}));
  std::string named_node;
  FE_RETURN_IF_ERROR(fields.String("node", named_node, JsonFields::kOptional));
  if (node != nullptr) *node = named_node;
  engine::CreateRequest request;
  FE_RETURN_IF_ERROR(fields.String("name", request.name, JsonFields::kRequired));
  FE_RETURN_IF_ERROR(fields.String("hypervisor", request.hypervisor, JsonFields::kRequired));
  FE_RETURN_IF_ERROR(fields.String("import_dir", request.import_dir, JsonFields::kOptional));
  FE_RETURN_IF_ERROR(ReadState(fields, "state", &request.state));
  FE_RETURN_IF_ERROR(ReadInt(fields, "vcpus", &request.vcpus));
  FE_RETURN_IF_ERROR(ParseAttachedVolumes(fields, &request.attached_volumes));
  FE_RETURN_IF_ERROR(fields.Bool("template", request.as_template));
  FE_RETURN_IF_ERROR(engine::ReadLabels(fields, "labels", request.labels));
  FE_RETURN_IF_ERROR(ReadPolicy(fields, request.ttl_s, request.idle_standby_s));
  std::string named_upload;
  FE_RETURN_IF_ERROR(fields.String("upload", named_upload, JsonFields::kOptional));
  if (!named_upload.empty() && !request.import_dir.empty()) {
    return fields.Fail("upload", "an instance is imported from an upload or from import_dir, not both");
  }
  if (upload != nullptr) *upload = named_upload;
  return request;
}

Result<engine::ForkRequest> ParseForkRequest(std::string_view body) {
  Result<Json> json = ParseObject(body, "fork request");
  if (!json.ok()) return json.status();
  JsonFields fields = BodyFields(*json);
  FE_RETURN_IF_ERROR(fields.RejectUnknown({"name", "from_running", "target_state", "count", "memory", "preflush",
                                           "source_pause", "first_index", "labels", "ttl_s", "idle_standby_s"}));
  engine::ForkRequest request;
  FE_RETURN_IF_ERROR(fields.String("name", request.name, JsonFields::kRequired));
  FE_RETURN_IF_ERROR(fields.Bool("from_running", request.from_running));
  FE_RETURN_IF_ERROR(ReadState(fields, "target_state", &request.target_state));
  FE_RETURN_IF_ERROR(ReadInt(fields, "count", &request.count));
  FE_RETURN_IF_ERROR(ReadMemoryMode(fields, &request.memory));
  FE_RETURN_IF_ERROR(fields.Bool("preflush", request.preflush));
  FE_RETURN_IF_ERROR(ReadSourcePause(fields, &request.source_pause));
  FE_RETURN_IF_ERROR(ReadInt(fields, "first_index", &request.first_index));
  FE_RETURN_IF_ERROR(engine::ReadLabels(fields, "labels", request.labels));
  FE_RETURN_IF_ERROR(ReadPolicy(fields, request.ttl_s, request.idle_standby_s));
  return request;
}

Result<engine::pools::PoolSpec> ParsePoolSpec(std::string_view body) {
  Result<Json> json = ParseObject(body, "pool request");
  if (!json.ok()) return json.status();
  JsonFields fields = BodyFields(*json);
  FE_RETURN_IF_ERROR(fields.RejectUnknown({"name", "template", "member_state", "min_size", "max_size", "memory"}));
  engine::pools::PoolSpec spec;
  FE_RETURN_IF_ERROR(fields.String("name", spec.name, JsonFields::kRequired));
  FE_RETURN_IF_ERROR(fields.String("template", spec.template_id, JsonFields::kRequired));
  std::optional<engine::InstanceState> member_state;
  FE_RETURN_IF_ERROR(ReadState(fields, "member_state", &member_state));
  if (member_state) spec.member_state = *member_state;
  FE_RETURN_IF_ERROR(ReadInt(fields, "min_size", &spec.min_size));
  FE_RETURN_IF_ERROR(ReadInt(fields, "max_size", &spec.max_size));
  FE_RETURN_IF_ERROR(ReadMemoryMode(fields, &spec.memory));
  return spec;
}

Result<engine::pools::AcquireRequest> ParseAcquireRequest(std::string_view body) {
  engine::pools::AcquireRequest request;
  if (body.find_first_not_of(" \t\r\n") == std::string_view::npos) return request;
  Result<Json> json = ParseObject(body, "acquire request");
  if (!json.ok()) return json.status();
  JsonFields fields = BodyFields(*json);
  FE_RETURN_IF_ERROR(fields.RejectUnknown({"name", "no_wait", "ttl_s", "idle_standby_s"}));
  FE_RETURN_IF_ERROR(fields.String("name", request.name, JsonFields::kOptional));
  FE_RETURN_IF_ERROR(fields.Bool("no_wait", request.no_wait));
  FE_RETURN_IF_ERROR(ReadPolicy(fields, request.ttl_s, request.idle_standby_s));
  return request;
}

Status ParseEmptyBody(std::string_view body) {
  if (body.find_first_not_of(" \t\r\n") == std::string_view::npos) return Status::Ok();
  Result<Json> json = ParseObject(body, "request");
  if (!json.ok()) return json.status();
  return BodyFields(*json).RejectUnknown({});
}

std::optional<std::string> QueryValue(const std::vector<std::pair<std::string, std::string>>& query,
                                      std::string_view name) {
  for (const auto& [key, value] : query) {
    if (key == name) return value;
  }
  return std::nullopt;
}

Result<uint64_t> QueryNumber(const std::string& text, std::string_view name, uint64_t max) {
  uint64_t value = 0;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || error != std::errc() || end != text.data() + text.size() || value > max) {
    return Status::InvalidArgument("query parameter '" + std::string(name) + "': '" + text +
                                   "' is not a number from 0 to " + std::to_string(max));
  }
  return value;
}

Result<std::string> ParseRestoreRequest(std::string_view body) {
  if (body.find_first_not_of(" \t\r\n") == std::string_view::npos) return std::string();
  Result<Json> json = ParseObject(body, "restore request");
  if (!json.ok()) return json.status();
  JsonFields fields = BodyFields(*json);
  FE_RETURN_IF_ERROR(fields.RejectUnknown({"snapshot"}));
  std::string snapshot;
  FE_RETURN_IF_ERROR(fields.String("snapshot", snapshot, JsonFields::kOptional));
  return snapshot;
}

Result<engine::SnapshotRequest> ParseSnapshotRequest(std::string_view body) {
  Result<Json> json = ParseObject(body, "snapshot request");
  if (!json.ok()) return json.status();
  JsonFields fields = BodyFields(*json);
  FE_RETURN_IF_ERROR(fields.RejectUnknown({"name", "labels", "preflush"}));
  engine::SnapshotRequest request;
  FE_RETURN_IF_ERROR(fields.String("name", request.name, JsonFields::kRequired));
  FE_RETURN_IF_ERROR(engine::ReadLabels(fields, "labels", request.labels));
  FE_RETURN_IF_ERROR(fields.Bool("preflush", request.preflush));
  return request;
}

Result<engine::InstanceQuery> ParseSnapshotQuery(const std::vector<std::pair<std::string, std::string>>& query) {
  std::vector<std::pair<std::string, std::string>> as_instances;
  for (const auto& [name, value] : query) {
    if (name == "parent" || name == "ancestor" || name == "state") {
      return Status::InvalidArgument("unknown query parameter '" + name +
                                     "' (expected label, instance, limit or page_token)");
    }
    as_instances.emplace_back(name == "instance" ? "parent" : name, value);
  }
  Result<engine::InstanceQuery> parsed = ParseInstanceQuery(as_instances);
  if (parsed.ok()) parsed->snapshots = true;
  return parsed;
}

void ResolveInstanceNames(const engine::Engine& engine, engine::InstanceQuery& query) {
  for (std::string* id_or_name : {&query.parent, &query.ancestor}) {
    if (id_or_name->empty()) continue;
    if (Result<engine::Instance> living = engine.Get(*id_or_name); living.ok()) *id_or_name = living->id;
  }
}

Result<engine::InstanceQuery> ParseInstanceQuery(const std::vector<std::pair<std::string, std::string>>& query) {
  engine::InstanceQuery parsed;
  for (const auto& [name, value] : query) {
    if (name == "label") {
      Result<engine::LabelSelector> selector = engine::ParseLabelSelector(value);
      if (!selector.ok()) return Status::InvalidArgument("query parameter 'label': " + selector.status().message());
      parsed.labels.push_back(std::move(*selector));
    } else if (name == "state") {
      Result<engine::InstanceState> state = engine::ParseInstanceState(value);
      if (!state.ok()) return Status::InvalidArgument("query parameter 'state': " + state.status().message());
      parsed.state = *state;
    } else if (name == "parent") {
      parsed.parent = value;
    } else if (name == "ancestor") {
      parsed.ancestor = value;
    } else if (name == "limit") {
      Result<uint64_t> limit = QueryNumber(value, "limit", engine::kMaxPageSize);
      if (!limit.ok()) return limit.status();
      if (*limit == 0)
        return Status::InvalidArgument("query parameter 'limit': 0 is not 1.." + std::to_string(engine::kMaxPageSize));
      parsed.limit = *limit;
    } else if (name == "page_token") {
      Result<engine::PageCursor> cursor = engine::DecodePageToken(value);
      if (!cursor.ok()) return Status::InvalidArgument("query parameter 'page_token': " + cursor.status().message());
      parsed.after = std::move(*cursor);
    } else {
      return Status::InvalidArgument("unknown query parameter '" + name +
                                     "' (expected label, state, parent, ancestor, limit or page_token)");
    }
  }
  return parsed;
}

}  // namespace fe::engine::forkd
