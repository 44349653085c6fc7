#include "snapshot/config_json.h"

#include <string>

namespace fe::snapshot {

Status FieldError(std::string_view file, std::string_view field, std::string_view what, ErrorCode code) {
  return Status(code, std::string(file) + ": " + std::string(field) + ": " + std::string(what));
}

Result<ConfigJson> ParseObject(std::string_view text, std::string_view file) {
  ConfigJson root;
  try {
    root = ConfigJson::parse(text);
  } catch (const ConfigJson::parse_error& error) {
    return Status::InvalidArgument(std::string(file) + ": not valid JSON: " + error.what());
  }
  if (!root.is_object()) {
    return FieldError(file, "(root)", "expected an object, found " + std::string(root.type_name()));
  }
  return root;
}

}  // namespace fe::snapshot
