// The one strict reader of JSON objects: typed fields, ranges, unknown-field refusal, and errors
// that name where the object came from and the field's full path:
//   "<origin>: field '<path>': <what>"   (or "field '<path>': <what>" when the origin is empty)
// e.g. "/var/lib/forkengine/instances/i-1/instance.json: field 'process.pid': missing".
//
// Instance metadata, pool specs, request bodies, the manifest and forkagent's requests read through
// it, so a refusal reads the same wherever the JSON came from. (forkctl's display of replies is
// lenient on purpose and does not use it.)
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "base/status.h"

namespace fe {

// Over JsonType and nlohmann::ordered_json (files whose key order we keep when rewriting).
template <typename JsonType>
class BasicJsonFields {
 public:
  enum class Presence { kOptional, kRequired };
  static constexpr Presence kOptional = Presence::kOptional;
  static constexpr Presence kRequired = Presence::kRequired;
  // Whether a null value counts as absent (request bodies: null means "the default") or as a value
  // of the wrong type (files we wrote ourselves).
  enum class Nulls { kAreValues, kAreAbsent };

  // `object` must outlive the reader. `prefix` is the path of `object` itself ("identity.").
  BasicJsonFields(const JsonType& object, std::string origin, std::string prefix = "", Nulls nulls = Nulls::kAreValues);

  // An InvalidArgument naming the field: "<origin>: field '<prefix><field>': <why>".
  Status Fail(std::string_view field, std::string_view why) const;

  // Each reader leaves `out` untouched when the field is absent and optional.
  Status String(std::string_view field, std::string& out, Presence presence) const;
  Status Bool(std::string_view field, bool& out, Presence presence = kOptional) const;
  Status Integer(std::string_view field, int64_t& out, Presence presence, int64_t min, int64_t max) const;
  Status Unsigned(std::string_view field, uint64_t& out, Presence presence, uint64_t max) const;

  // Integer() narrowed to `Int`, with the range [min, max] checked before the conversion.
  template <typename Int>
  Status Number(std::string_view field, Int& out, Presence presence, int64_t min, uint64_t max) const {
    if (min >= 0) {
      uint64_t value = 0;
      FE_RETURN_IF_ERROR(Unsigned(field, value, presence, max));
      if (Find(field) != nullptr) {
        if (value < static_cast<uint64_t>(min)) return OutOfRange(field);
        out = static_cast<Int>(value);
      }
      return Status::Ok();
    }
    int64_t value = 0;
    int64_t upper = max > static_cast<uint64_t>(INT64_MAX) ? INT64_MAX : static_cast<int64_t>(max);
    FE_RETURN_IF_ERROR(Integer(field, value, presence, min, upper));
    if (Find(field) != nullptr) out = static_cast<Int>(value);
    return Status::Ok();
  }

  // The object or array under `field`; nullptr when it is absent and optional.
  Result<const JsonType*> Object(std::string_view field, Presence presence) const;
  Result<const JsonType*> Array(std::string_view field, Presence presence) const;

  // A reader of the object `value` found under `field` (e.g. "identity" or "volumes[2]").
  BasicJsonFields Nested(const JsonType& value, std::string_view field) const;

  // Refuses any key of the object not in `known`: "field '<prefix><key>': unknown".
  Status RejectUnknown(std::initializer_list<std::string_view> known) const;

  // The field's value, or nullptr when absent (or null, under Nulls::kAreAbsent).
  const JsonType* Find(std::string_view field) const;

  const std::string& origin() const { return origin_; }

 private:
  Status WrongType(std::string_view field, std::string_view expected, const JsonType& value) const;
  Status OutOfRange(std::string_view field) const;

  const JsonType& object_;
  std::string origin_;
  std::string prefix_;
  Nulls nulls_;
};

using JsonFields = BasicJsonFields<nlohmann::json>;
using OrderedJsonFields = BasicJsonFields<nlohmann::ordered_json>;
extern template class BasicJsonFields<nlohmann::json>;
extern template class BasicJsonFields<nlohmann::ordered_json>;

// "integer", "number", "string", "object", ... as a JSON Schema would name the value's type.
template <typename JsonType>
std::string_view JsonTypeName(const JsonType& value) {
  if (value.is_number_integer()) return "integer";
  if (value.is_number()) return "number";
  return value.type_name();
}

}  // namespace fe
