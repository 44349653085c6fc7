#include "engine/forkd/request_parsing.h"

#include <initializer_list>
#include <limits>
#include <string>

#include <nlohmann/json.hpp>

namespace fe::forkd {
namespace {

using Json = nlohmann::json;

Status Invalid(const std::string& message) { return Status(ErrorCode::kInvalidArgument, message); }

std::string_view TypeName(const Json& value) {
  if (value.is_number_integer()) return "integer";
  if (value.is_number()) return "number";
  return value.type_name();
}

Result<Json> ParseObject(std::string_view body, std::string_view what) {
  Json json = Json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (json.is_discarded()) return Invalid(std::string(what) + ": the body is not valid JSON");
  if (!json.is_object()) return Invalid(std::string(what) + ": the body must be a JSON object, not " + std::string(TypeName(json)));
  return json;
}

// Reads typed fields of one object and rejects fields it was not asked about.
class FieldReader {
 public:
  FieldReader(const Json& object, std::string prefix) : object_(object), prefix_(std::move(prefix)) {}

  Status RejectUnknown(std::initializer_list<std::string_view> known) const {
    for (const auto& [key, value] : object_.items()) {
      bool found = false;
      for (std::string_view name : known) found = found || key == name;
      if (!found) return Invalid("unknown field '" + prefix_ + key + "'");
    }
    return Status::Ok();
  }

  Status String(const char* name, bool required, std::string* out) const {
    const Json* value = Find(name);
    if (value == nullptr) return required ? Missing(name) : Status::Ok();
    if (!value->is_string()) return WrongType(name, "a string", *value);
    *out = value->get<std::string>();
    return Status::Ok();
  }

  Status Bool(const char* name, bool* out) const {
    const Json* value = Find(name);
    if (value == nullptr) return Status::Ok();
    if (!value->is_boolean()) return WrongType(name, "a boolean", *value);
    *out = value->get<bool>();
    return Status::Ok();
  }

  Status Int(const char* name, int* out) const {
    const Json* value = Find(name);
    if (value == nullptr) return Status::Ok();
    if (!value->is_number_integer()) return WrongType(name, "an integer", *value);
    if (value->is_number_unsigned() ? value->get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<int>::max())
                                    : (value->get<int64_t>() < std::numeric_limits<int>::min() ||
                                       value->get<int64_t>() > std::numeric_limits<int>::max())) {
      return Invalid("field '" + prefix_ + name + "': " + value->dump() + " is out of range");
    }
    *out = value->get<int>();
    return Status::Ok();
  }

  Status State(const char* name, std::optional<engine::InstanceState>* out) const {
    std::string text;
    if (Find(name) == nullptr) return Status::Ok();
    FE_RETURN_IF_ERROR(String(name, false, &text));
    Result<engine::InstanceState> state = engine::ParseInstanceState(text);
    if (!state.ok()) return state.status().Annotate("field '" + prefix_ + name + "'");
    *out = *state;
    return Status::Ok();
  }

  // The field's value; nullptr when it is absent or null (null means "the default").
  const Json* Find(const char* name) const {
    auto it = object_.find(name);
    return it == object_.end() || it->is_null() ? nullptr : &*it;
  }

 private:
  Status Missing(const char* name) const { return Invalid("missing required field '" + prefix_ + name + "'"); }
  Status WrongType(const char* name, std::string_view expected, const Json& value) const {
    return Invalid("field '" + prefix_ + name + "' must be " + std::string(expected) + ", not " +
                   std::string(TypeName(value)));
  }

  const Json& object_;
  std::string prefix_;
};

Status ParseAttachedVolumes(const FieldReader& fields, std::vector<engine::AttachedVolume>* out) {
  const Json* list = fields.Find("attached_volumes");
  if (list == nullptr) return Status::Ok();
  if (!list->is_array()) return Invalid("field 'attached_volumes' must be an array, not " + std::string(TypeName(*list)));
  for (size_t i = 0; i < list->size(); ++i) {
    const Json& item = (*list)[i];
    std::string prefix = "attached_volumes[" + std::to_string(i) + "]";
    if (!item.is_object()) return Invalid("field '" + prefix + "' must be an object, not " + std::string(TypeName(item)));
    FieldReader volume(item, prefix + ".");
    FE_RETURN_IF_ERROR(volume.RejectUnknown({"path", "read_only"}));
    engine::AttachedVolume attached;
    FE_RETURN_IF_ERROR(volume.String("path", true, &attached.path));
    FE_RETURN_IF_ERROR(volume.Bool("read_only", &attached.read_only));
    out->push_back(std::move(attached));
  }
  return Status::Ok();
}

}  // namespace

Result<engine::CreateRequest> ParseCreateRequest(std::string_view body) {
  Result<Json> json = ParseObject(body, "create request");
  if (!json.ok()) return json.status();
  FieldReader fields(*json, "");
  FE_RETURN_IF_ERROR(fields.RejectUnknown({"name", "hypervisor", "import_dir", "state", "vcpus", "attached_volumes"}));
  engine::CreateRequest request;
  FE_RETURN_IF_ERROR(fields.String("name", true, &request.name));
  FE_RETURN_IF_ERROR(fields.String("hypervisor", true, &request.hypervisor));
  FE_RETURN_IF_ERROR(fields.String("import_dir", false, &request.import_dir));
  FE_RETURN_IF_ERROR(fields.State("state", &request.state));
  FE_RETURN_IF_ERROR(fields.Int("vcpus", &request.vcpus));
  FE_RETURN_IF_ERROR(ParseAttachedVolumes(fields, &request.attached_volumes));
  return request;
}

Result<engine::ForkRequest> ParseForkRequest(std::string_view body) {
  Result<Json> json = ParseObject(body, "fork request");
  if (!json.ok()) return json.status();
  FieldReader fields(*json, "");
  FE_RETURN_IF_ERROR(fields.RejectUnknown({"name", "from_running", "target_state", "count"}));
  engine::ForkRequest request;
  FE_RETURN_IF_ERROR(fields.String("name", true, &request.name));
  FE_RETURN_IF_ERROR(fields.Bool("from_running", &request.from_running));
  FE_RETURN_IF_ERROR(fields.State("target_state", &request.target_state));
  FE_RETURN_IF_ERROR(fields.Int("count", &request.count));
  return request;
}

Result<engine::PoolSpec> ParsePoolSpec(std::string_view body) {
  Result<Json> json = ParseObject(body, "pool request");
  if (!json.ok()) return json.status();
  FieldReader fields(*json, "");
  FE_RETURN_IF_ERROR(fields.RejectUnknown({"name", "template", "member_state", "min_size", "max_size"}));
  engine::PoolSpec spec;
  FE_RETURN_IF_ERROR(fields.String("name", true, &spec.name));
  FE_RETURN_IF_ERROR(fields.String("template", true, &spec.template_id));
  std::optional<engine::InstanceState> member_state;
  FE_RETURN_IF_ERROR(fields.State("member_state", &member_state));
  if (member_state) spec.member_state = *member_state;
  FE_RETURN_IF_ERROR(fields.Int("min_size", &spec.min_size));
  FE_RETURN_IF_ERROR(fields.Int("max_size", &spec.max_size));
  return spec;
}

Result<engine::AcquireRequest> ParseAcquireRequest(std::string_view body) {
  engine::AcquireRequest request;
  if (body.find_first_not_of(" \t\r\n") == std::string_view::npos) return request;
  Result<Json> json = ParseObject(body, "acquire request");
  if (!json.ok()) return json.status();
  FieldReader fields(*json, "");
  FE_RETURN_IF_ERROR(fields.RejectUnknown({"name", "no_wait"}));
  FE_RETURN_IF_ERROR(fields.String("name", false, &request.name));
  FE_RETURN_IF_ERROR(fields.Bool("no_wait", &request.no_wait));
  return request;
}

Status ParseEmptyBody(std::string_view body) {
  if (body.find_first_not_of(" \t\r\n") == std::string_view::npos) return Status::Ok();
  Result<Json> json = ParseObject(body, "request");
  if (!json.ok()) return json.status();
  return FieldReader(*json, "").RejectUnknown({});
}

}  // namespace fe::forkd
