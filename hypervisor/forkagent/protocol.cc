#include "hypervisor/forkagent/protocol.h"

#include <arpa/inet.h>

#include <cstdio>

#include <nlohmann/json.hpp>

namespace fe::forkagent {
namespace {

using Json = nlohmann::ordered_json;

constexpr int kVersion = 1;

Status Invalid(std::string message) {
  return Status(ErrorCode::kInvalidArgument, "invalid set_identity request: " + std::move(message));
}

bool IsLowerHex(std::string_view text) {
  for (char c : text) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

int HexDigit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// The string member `key` of `object`, or an error naming `where`.
Result<std::string> StringField(const Json& object, const char* key, const std::string& where) {
  auto it = object.find(key);
  if (it == object.end()) return Invalid("missing " + where);
  if (!it->is_string()) return Invalid(where + " is not a string");
  return it->get<std::string>();
}

Result<GuestIdentity> ParseIdentity(const Json& request) {
  auto it = request.find("identity");
  if (it == request.end() || !it->is_object()) return Invalid("missing identity object");
  const Json& object = *it;
  GuestIdentity identity;

  Result<std::string> mac = StringField(object, "mac", "identity.mac");
  if (!mac.ok()) return mac.status();
  Result<MacAddress> mac_bytes = ParseMac(*mac);
  if (!mac_bytes.ok()) return Invalid("identity.mac: " + mac_bytes.status().message());
  identity.mac = *mac_bytes;

  Result<std::string> ipv4 = StringField(object, "ipv4", "identity.ipv4");
  if (!ipv4.ok()) return ipv4.status();
  Result<uint32_t> address = ParseIpv4(*ipv4);
  if (!address.ok()) return Invalid("identity.ipv4: " + address.status().message());
  identity.ipv4 = *address;

  auto prefix = object.find("prefix_length");
  if (prefix == object.end() || !prefix->is_number_integer() || *prefix < 1 || *prefix > 32) {
    return Invalid("identity.prefix_length must be an integer from 1 to 32");
  }
  identity.prefix_length = prefix->get<int>();

  // An empty (or absent) gateway means no default route; the engine's allocator always sends one.
  auto gateway = object.find("gateway");
  if (gateway != object.end() && !(gateway->is_string() && gateway->get<std::string>().empty())) {
    if (!gateway->is_string()) return Invalid("identity.gateway is not a string");
    Result<uint32_t> gateway_address = ParseIpv4(gateway->get<std::string>());
    if (!gateway_address.ok()) return Invalid("identity.gateway: " + gateway_address.status().message());
    identity.gateway = *gateway_address;
  }
  return identity;
}

}  // namespace

Result<MacAddress> ParseMac(std::string_view text) {
  MacAddress mac{};
  if (text.size() != 17) return Status(ErrorCode::kInvalidArgument, "'" + std::string(text) + "' is not a MAC address");
  for (size_t i = 0; i < mac.size(); ++i) {
    int high = HexDigit(text[i * 3]);
    int low = HexDigit(text[i * 3 + 1]);
    if (high < 0 || low < 0 || (i < 5 && text[i * 3 + 2] != ':')) {
      return Status(ErrorCode::kInvalidArgument, "'" + std::string(text) + "' is not a MAC address");
    }
    mac[i] = static_cast<uint8_t>(high << 4 | low);
  }
  if (mac[0] & 0x01) return Status(ErrorCode::kInvalidArgument, "'" + std::string(text) + "' is a multicast address");
  return mac;
}

std::string FormatMac(const MacAddress& mac) {
  char text[18];
  std::snprintf(text, sizeof(text), "%02x:%02x:%02x:%02x:%02x:%02x", mac[0], mac[1], mac[2], mac[3], mac[4], mac[5]);
  return text;
}

Result<uint32_t> ParseIpv4(std::string_view text) {
  in_addr address{};
  if (::inet_pton(AF_INET, std::string(text).c_str(), &address) != 1) {
    return Status(ErrorCode::kInvalidArgument, "'" + std::string(text) + "' is not a dotted-quad IPv4 address");
  }
  return address.s_addr;
}

std::string FormatIpv4(uint32_t address) {
  char text[INET_ADDRSTRLEN];
  in_addr value{address};
  ::inet_ntop(AF_INET, &value, text, sizeof(text));
  return text;
}

Result<IdentityRequest> ParseIdentityRequest(std::string_view line) {
  Json request = Json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (request.is_discarded() || !request.is_object()) return Invalid("not a JSON object");

  // The version is checked first: a later version may change every other field.
  auto version = request.find("version");
  if (version == request.end() || !version->is_number_integer()) return Invalid("missing integer version");
  if (*version != kVersion) {
    return Status(ErrorCode::kUnsupported,
                  "protocol version " + version->dump() + " is not supported (this agent speaks 1)");
  }
  Result<std::string> type = StringField(request, "type", "type");
  if (!type.ok()) return type.status();
  if (*type != "set_identity") return Invalid("unknown request type '" + *type + "'");

  IdentityRequest parsed;
  Result<std::string> nonce = StringField(request, "nonce", "nonce");
  if (!nonce.ok()) return nonce.status();
  if (nonce->size() != 32 || !IsLowerHex(*nonce)) return Invalid("nonce is not 32 lower-case hex digits");
  parsed.nonce = *nonce;

  auto generation = request.find("generation");
  if (generation == request.end() || !generation->is_number_unsigned()) {
    return Invalid("generation must be a non-negative integer");
  }
  parsed.generation = generation->get<uint64_t>();

  Result<GuestIdentity> identity = ParseIdentity(request);
  if (!identity.ok()) return identity.status();
  parsed.identity = *identity;

  auto previous = request.find("previous_mac");
  if (previous != request.end() && !previous->is_string()) return Invalid("previous_mac is not a string");
  if (previous != request.end() && !previous->get<std::string>().empty()) {
    Result<MacAddress> mac = ParseMac(previous->get<std::string>());
    if (!mac.ok()) return Invalid("previous_mac: " + mac.status().message());
    parsed.has_previous_mac = true;
    parsed.previous_mac = *mac;
  }

  auto host_time = request.find("host_time");
  if (host_time == request.end() || !host_time->is_object()) return Invalid("missing host_time object");
  auto realtime = host_time->find("realtime_ns");
  if (realtime == host_time->end() || !realtime->is_number_integer() || realtime->get<int64_t>() <= 0) {
    return Invalid("host_time.realtime_ns must be a positive integer");
  }
  parsed.host_realtime_ns = realtime->get<int64_t>();
  return parsed;
}

std::string NonceOf(std::string_view line) {
  Json request = Json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (request.is_discarded() || !request.is_object()) return "";
  auto nonce = request.find("nonce");
  if (nonce == request.end() || !nonce->is_string()) return "";
  std::string text = nonce->get<std::string>();
  return text.size() == 32 && IsLowerHex(text) ? text : "";
}

std::string_view RejectionCode(const Status& parse_failure) {
  return parse_failure.code() == ErrorCode::kUnsupported ? kUnsupportedVersion : kInvalidRequest;
}

std::string EncodeAck(std::string_view nonce, uint64_t generation) {
  Json ack = {{"type", "ack"}, {"version", kVersion}, {"nonce", std::string(nonce)}, {"generation", generation}};
  return ack.dump() + "\n";
}

std::string EncodeError(std::string_view nonce, std::string_view code, std::string_view message) {
  Json error = {{"type", "error"},
                {"version", kVersion},
                {"nonce", std::string(nonce)},
                {"code", std::string(code)},
                {"message", std::string(message)}};
  if (code == kUnsupportedVersion) error["supported"] = Json::array({kVersion});
  // A message quoting guest bytes may not be valid UTF-8: replace rather than throw.
  return error.dump(-1, ' ', false, Json::error_handler_t::replace) + "\n";
}

}  // namespace fe::forkagent
