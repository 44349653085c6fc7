#include "engine/instance_query.h"

#include <algorithm>

namespace fe::engine {
namespace {

constexpr char kHex[] = "0123456789abcdef";
// Between the two fields: a byte neither holds (RFC 3339 times and instance ids are printable).
constexpr char kSeparator = '\n';

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

}  // namespace

PageCursor CursorOf(const Instance& instance) { return {instance.created_at, instance.id}; }

std::string EncodePageToken(const PageCursor& cursor) {
  const std::string plain = cursor.created_at + kSeparator + cursor.id;
  std::string token;
  token.reserve(plain.size() * 2);
  for (unsigned char c : plain) {
    token.push_back(kHex[c >> 4]);
    token.push_back(kHex[c & 0x0f]);
  }
  return token;
}

Result<PageCursor> DecodePageToken(std::string_view token) {
  auto invalid = [&] {
    return Status::InvalidArgument("page_token '" + std::string(token.substr(0, 64)) +
                                   "' is not one a listing returned");
  };
  if (token.empty() || token.size() % 2 != 0 || token.size() > 512) return invalid();
  std::string plain;
  for (size_t i = 0; i < token.size(); i += 2) {
    const int high = HexValue(token[i]), low = HexValue(token[i + 1]);
    if (high < 0 || low < 0) return invalid();
    plain.push_back(static_cast<char>(high << 4 | low));
  }
  const size_t separator = plain.find(kSeparator);
  if (separator == std::string::npos || plain.find(kSeparator, separator + 1) != std::string::npos) return invalid();
  return PageCursor{plain.substr(0, separator), plain.substr(separator + 1)};
}

bool InstanceQuery::Matches(const Instance& instance) const {
  if (instance.snapshot_mark.has_value() != snapshots) return false;
  if (state && instance.state != *state) return false;
  if (with_policy && instance.lifecycle.expires_at.empty() && instance.lifecycle.idle_standby_s == 0) return false;
  if (!parent.empty() && instance.parent_id != parent) return false;
  if (!ancestor.empty() && std::none_of(instance.ancestors.begin(), instance.ancestors.end(),
                                        [&](const Ancestor& a) { return a.id == ancestor; })) {
    return false;
  }
  return MatchesLabels(instance.labels, labels);
}

}  // namespace fe::engine
