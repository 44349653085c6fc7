// Lenient reads of forkd's JSON replies for display: a missing or mistyped field shows as "-" or 0
// rather than failing the command (the reply's shape is the server's business; forkctl only shows it).
#pragma once

#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

namespace fe::engine::forkctl {

// object[key], or null when `object` is not an object or has no such key.
const nlohmann::json& Field(const nlohmann::json& object, const char* key);

// A string, number or boolean field as text ("yes"/"no"); "-" when missing, null, empty or of another type.
std::string Text(const nlohmann::json& object, const char* key);

// A numeric field (a fraction is truncated); 0 otherwise.
int64_t Integer(const nlohmann::json& object, const char* key);

// `array` when it is an array, else an empty one.
const nlohmann::json& Elements(const nlohmann::json& array);

}  // namespace fe::engine::forkctl
