// Hypervisor config files as JSON for the plugins that rewrite them: ordered objects (a rewrite keeps
// the file's key order, so it changes only what it means to) and errors that name the file and the
// field ("config.json: drives[1].path_on_host: ...").
#pragma once

#include <string_view>

#include <nlohmann/json.hpp>

#include "base/status.h"

namespace fe::snapshot {

using ConfigJson = nlohmann::ordered_json;

// "<file>: <field>: <what>" with `code` (InvalidArgument by default).
Status FieldError(std::string_view file, std::string_view field, std::string_view what,
                  ErrorCode code = ErrorCode::kInvalidArgument);

// Parses `text` as a JSON object; errors name `file` and carry the parser's position.
Result<ConfigJson> ParseObject(std::string_view text, std::string_view file);

}  // namespace fe::snapshot
