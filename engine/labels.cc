#include "engine/labels.h"

namespace fe::engine {
namespace {

bool IsAlphanumeric(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'); }

bool IsKeyChar(char c) { return IsAlphanumeric(c) || c == '.' || c == '_' || c == '-' || c == '/'; }

// Why `key` is no label key; empty when it is one.
std::string KeyProblem(std::string_view key) {
  if (key.empty()) return "the key is empty";
  if (key.size() > kMaxLabelKeyLength) return "the key is longer than " + std::to_string(kMaxLabelKeyLength);
  for (char c : key) {
    if (!IsKeyChar(c)) return "the key holds a character other than A-Z, a-z, 0-9, '.', '_', '-' and '/'";
  }
  if (!IsAlphanumeric(key.front()) || !IsAlphanumeric(key.back())) {
    return "the key does not start and end with a letter or digit";
  }
  return "";
}

// What is wrong with `labels`: the field under "labels" it concerns ("" or ".<key>") and why; nullopt
// when nothing is.
std::optional<std::pair<std::string, std::string>> LabelsProblem(const Labels& labels) {
  if (labels.size() > kMaxLabels) {
    return std::pair{"", std::to_string(labels.size()) + " labels, at most " + std::to_string(kMaxLabels)};
  }
  for (const auto& [key, value] : labels) {
    if (std::string problem = KeyProblem(key); !problem.empty()) return std::pair{"." + key, problem};
    if (value.size() > kMaxLabelValueLength) {
      return std::pair{"." + key, "the value is longer than " + std::to_string(kMaxLabelValueLength) + " bytes"};
    }
    for (unsigned char c : value) {
      if (c < 0x20 || c == 0x7f) return std::pair{"." + key, std::string("the value holds a control character")};
    }
  }
  return std::nullopt;
}

}  // namespace

Status ValidateLabels(const Labels& labels) {
  if (auto problem = LabelsProblem(labels)) {
    return Status::InvalidArgument("field 'labels" + problem->first + "': " + problem->second);
  }
  return Status::Ok();
}

nlohmann::json LabelsToJson(const Labels& labels) {
  nlohmann::json json = nlohmann::json::object();
  for (const auto& [key, value] : labels) json[key] = value;
  return json;
}

Status ReadLabels(const JsonFields& reader, std::string_view field, Labels& out) {
  const nlohmann::json* object = reader.Find(field);
  if (object == nullptr || object->is_null()) return Status::Ok();
  Result<const nlohmann::json*> checked = reader.Object(field, JsonFields::kRequired);
  if (!checked.ok()) return checked.status();
  Labels labels;
  for (const auto& [key, value] : object->items()) {
    if (!value.is_string()) {
      return reader.Fail(std::string(field) + "." + key,
                         "expected a string, found " + std::string(JsonTypeName(value)));
    }
    labels.emplace(key, value.get<std::string>());
  }
  if (auto problem = LabelsProblem(labels)) return reader.Fail(std::string(field) + problem->first, problem->second);
  out = std::move(labels);
  return Status::Ok();
}

Labels MergeLabels(Labels base, const Labels& over) {
  for (const auto& [key, value] : over) base[key] = value;
  return base;
}

Result<LabelSelector> ParseLabelSelector(std::string_view text) {
  const size_t equals = text.find('=');
  LabelSelector selector{.key = std::string(text.substr(0, equals)), .value = std::nullopt};
  if (equals != std::string_view::npos) selector.value = std::string(text.substr(equals + 1));
  if (std::string problem = KeyProblem(selector.key); !problem.empty()) {
    return Status::InvalidArgument("label selector '" + std::string(text) + "': " + problem +
                                   " (expected key=value or key)");
  }
  return selector;
}

bool MatchesLabels(const Labels& labels, const std::vector<LabelSelector>& selectors) {
  for (const LabelSelector& selector : selectors) {
    auto found = labels.find(selector.key);
    if (found == labels.end()) return false;
    if (selector.value && found->second != *selector.value) return false;
  }
  return true;
}

}  // namespace fe::engine
