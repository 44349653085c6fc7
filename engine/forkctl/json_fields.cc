#include "engine/forkctl/json_fields.h"

namespace fe::engine::forkctl {

using nlohmann::json;

const json& Field(const json& object, const char* key) {
  static const json kNull;
  if (!object.is_object()) return kNull;
  auto it = object.find(key);
  return it == object.end() ? kNull : *it;
}

std::string Text(const json& object, const char* key) {
  const json& value = Field(object, key);
  if (value.is_string()) return value.get<std::string>().empty() ? "-" : value.get<std::string>();
  if (value.is_boolean()) return value.get<bool>() ? "yes" : "no";
  if (value.is_number()) return value.dump();
  return "-";
}

int64_t Integer(const json& object, const char* key) {
  const json& value = Field(object, key);
  if (value.is_number_integer()) return value.get<int64_t>();
  if (value.is_number()) return static_cast<int64_t>(value.get<double>());
  return 0;
}

const json& Elements(const json& array) {
  static const json kEmpty = json::array();
  return array.is_array() ? array : kEmpty;
}

}  // namespace fe::engine::forkctl
