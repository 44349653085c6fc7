// Labels: a string map a client attaches to an instance to find it again (its user, task, tier),
// set at create and fork, inherited by forks unless the fork overrides a key, and matched by the
// listing's selectors (engine/instance_query.h). What a platform would otherwise keep in an index
// of its own beside forkd.
#pragma once

#include <cstddef>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/json_fields.h"
#include "base/status.h"

namespace fe::engine {

using Labels = std::map<std::string, std::string>;

inline constexpr size_t kMaxLabels = 64;
inline constexpr size_t kMaxLabelKeyLength = 128;
inline constexpr size_t kMaxLabelValueLength = 255;

// Keys: 1..128 of A-Z, a-z, 0-9, '.', '_', '-' and '/', starting and ending with a letter or digit
// ("team", "example.com/task"). Values: 0..255 bytes without control characters. At most 64 labels.
// InvalidArgument naming "labels.<key>".
Status ValidateLabels(const Labels& labels);

nlohmann::json LabelsToJson(const Labels& labels);
// The optional object `field` of `reader` (absent or null: none), each value a string; validated.
Status ReadLabels(const JsonFields& reader, std::string_view field, Labels& out);

// `over` laid over `base`: a fork's labels are its source's with the request's keys replaced.
Labels MergeLabels(Labels base, const Labels& over);

// One term of a listing's label filter: "key=value" (the value may be empty or hold '='), or "key"
// (the key present, whatever its value).
struct LabelSelector {
  std::string key;
  std::optional<std::string> value;
};
// InvalidArgument naming the selector when its key is no label key.
Result<LabelSelector> ParseLabelSelector(std::string_view text);
// Whether `labels` satisfy every selector.
bool MatchesLabels(const Labels& labels, const std::vector<LabelSelector>& selectors);

}  // namespace fe::engine
