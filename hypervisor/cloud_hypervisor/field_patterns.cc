#include "hypervisor/cloud_hypervisor/field_patterns.h"

#include <vector>

namespace fe::hypervisor::cloud_hypervisor {
namespace {

struct Step {
  std::string key;
  bool each = false;  // "key[]": visit every element
};

std::vector<Step> Split(std::string_view pattern) {
  std::vector<Step> steps;
  size_t start = 0;
  while (start <= pattern.size()) {
    size_t end = pattern.find('.', start);
    if (end == std::string_view::npos) end = pattern.size();
    std::string_view part = pattern.substr(start, end - start);
    Step step;
    if (part.size() > 2 && part.substr(part.size() - 2) == "[]") {
      step.each = true;
      part.remove_suffix(2);
    }
    step.key = std::string(part);
    steps.push_back(std::move(step));
    start = end + 1;
  }
  return steps;
}

Status Walk(Json& object, const std::vector<Step>& steps, size_t index, const std::string& prefix,
            std::string_view file, const FieldVisitor& visit) {
  const Step& step = steps[index];
  std::string field = prefix.empty() ? step.key : prefix + "." + step.key;
  if (!object.is_object()) return FieldError(file, prefix.empty() ? "(root)" : prefix, "expected an object");
  auto it = object.find(step.key);
  if (it == object.end() || it->is_null()) return Status::Ok();
  bool last = index + 1 == steps.size();
  if (!step.each) {
    if (last) return visit(object, step.key, field);
    return Walk(*it, steps, index + 1, field, file, visit);
  }
  if (!it->is_array()) return FieldError(file, field, "expected an array, found " + it->dump());
  for (size_t i = 0; i < it->size(); ++i) {
    std::string element = field + "[" + std::to_string(i) + "]";
    if (last) return FieldError(file, element, "a pattern must end at a field");  // programming error
    FE_RETURN_IF_ERROR(Walk((*it)[i], steps, index + 1, element, file, visit));
  }
  return Status::Ok();
}

}  // namespace

Status ForEachField(Json& root, std::string_view pattern, std::string_view file, const FieldVisitor& visit) {
  return Walk(root, Split(pattern), 0, "", file, visit);
}

Result<std::string> StringAt(const Json& parent, const std::string& key, std::string_view file,
                             std::string_view field) {
  const Json& value = parent.at(key);
  if (!value.is_string()) return FieldError(file, field, "expected a string, found " + value.dump());
  return value.get<std::string>();
}

bool BoolOr(const Json& parent, const std::string& key, bool fallback) {
  auto it = parent.find(key);
  return it != parent.end() && it->is_boolean() ? it->get<bool>() : fallback;
}

}  // namespace fe::hypervisor::cloud_hypervisor
