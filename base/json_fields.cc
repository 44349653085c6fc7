#include "base/json_fields.h"

namespace fe {

template <typename Json>
BasicJsonFields<Json>::BasicJsonFields(const Json& object, std::string origin, std::string prefix, Nulls nulls)
    : object_(object), origin_(std::move(origin)), prefix_(std::move(prefix)), nulls_(nulls) {}

template <typename Json>
Status BasicJsonFields<Json>::Fail(std::string_view field, std::string_view why) const {
  std::string message;
  if (!origin_.empty()) message.append(origin_).append(": ");
  message.append("field '").append(prefix_).append(field).append("': ").append(why);
  return Status::InvalidArgument(std::move(message));
}

template <typename Json>
Status BasicJsonFields<Json>::WrongType(std::string_view field, std::string_view expected, const Json& value) const {
  std::string why = "expected ";
  why.append(expected).append(", found ").append(JsonTypeName(value));
  return Fail(field, why);
}

template <typename Json>
Status BasicJsonFields<Json>::OutOfRange(std::string_view field) const {
  const Json* value = Find(field);
  return Fail(field, "out of range (" + (value != nullptr ? value->dump() : std::string("?")) + ")");
}

template <typename Json>
const Json* BasicJsonFields<Json>::Find(std::string_view field) const {
  if (!object_.is_object()) return nullptr;
  auto it = object_.find(field);
  if (it == object_.end()) return nullptr;
  if (nulls_ == Nulls::kAreAbsent && it->is_null()) return nullptr;
  return &*it;
}

template <typename Json>
Status BasicJsonFields<Json>::String(std::string_view field, std::string& out, Presence presence) const {
  const Json* value = Find(field);
  if (value == nullptr) return presence == kRequired ? Fail(field, "missing") : Status::Ok();
  if (!value->is_string()) return WrongType(field, "a string", *value);
  out = value->template get<std::string>();
  return Status::Ok();
}

template <typename Json>
Status BasicJsonFields<Json>::Bool(std::string_view field, bool& out, Presence presence) const {
  const Json* value = Find(field);
  if (value == nullptr) return presence == kRequired ? Fail(field, "missing") : Status::Ok();
  if (!value->is_boolean()) return WrongType(field, "true or false", *value);
  out = value->template get<bool>();
  return Status::Ok();
}

template <typename Json>
Status BasicJsonFields<Json>::Integer(std::string_view field, int64_t& out, Presence presence, int64_t min,
                                      int64_t max) const {
  const Json* value = Find(field);
  if (value == nullptr) return presence == kRequired ? Fail(field, "missing") : Status::Ok();
  if (!value->is_number_integer()) return WrongType(field, "an integer", *value);
  if (value->is_number_unsigned() && value->template get<uint64_t>() > static_cast<uint64_t>(INT64_MAX)) {
    return OutOfRange(field);
  }
  int64_t number = value->template get<int64_t>();
  if (number < min || number > max) return OutOfRange(field);
  out = number;
  return Status::Ok();
}

template <typename Json>
Status BasicJsonFields<Json>::Unsigned(std::string_view field, uint64_t& out, Presence presence, uint64_t max) const {
  const Json* value = Find(field);
  if (value == nullptr) return presence == kRequired ? Fail(field, "missing") : Status::Ok();
  if (!value->is_number_integer()) return WrongType(field, "an integer", *value);
  if (!value->is_number_unsigned() && value->template get<int64_t>() < 0) return OutOfRange(field);
  uint64_t number = value->template get<uint64_t>();
  if (number > max) return OutOfRange(field);
  out = number;
  return Status::Ok();
}

template <typename Json>
Result<const Json*> BasicJsonFields<Json>::Object(std::string_view field, Presence presence) const {
  const Json* value = Find(field);
  if (value == nullptr || (value->is_null() && presence == kOptional)) {
    if (presence == kRequired) return Fail(field, "missing");
    return static_cast<const Json*>(nullptr);
  }
  if (!value->is_object()) return WrongType(field, "an object", *value);
  return value;
}

template <typename Json>
Result<const Json*> BasicJsonFields<Json>::Array(std::string_view field, Presence presence) const {
  const Json* value = Find(field);
  if (value == nullptr) {
    if (presence == kRequired) return Fail(field, "missing");
    return static_cast<const Json*>(nullptr);
  }
  if (!value->is_array()) return WrongType(field, "an array", *value);
  return value;
}

template <typename Json>
BasicJsonFields<Json> BasicJsonFields<Json>::Nested(const Json& value, std::string_view field) const {
  return BasicJsonFields(value, origin_, prefix_ + std::string(field) + ".", nulls_);
}

template <typename Json>
Status BasicJsonFields<Json>::RejectUnknown(std::initializer_list<std::string_view> known) const {
  if (!object_.is_object()) return Status::Ok();
  for (const auto& item : object_.items()) {
    bool found = false;
    for (std::string_view name : known) found = found || item.key() == name;
    if (!found) return Fail(item.key(), "unknown");
  }
  return Status::Ok();
}

template class BasicJsonFields<nlohmann::json>;
template class BasicJsonFields<nlohmann::ordered_json>;

}  // namespace fe
