#include "hypervisor/forkagent/protocol.h"

#include <arpa/inet.h>

#include <cstdio>

#include <nlohmann/json.hpp>

#include "base/json_fields.h"
#include "hypervisor/forkagent/wire.h"

namespace fe::hypervisor::forkagent {
namespace {

using Json = nlohmann::ordered_json;

constexpr int kVersion = kIdentityProtocolVersion;

Status InvalidRequest(std::string_view type, std::string_view message) {
  std::string text = "invalid ";
  text.append(type).append(" request: ").append(message);
  return Status::InvalidArgument(std::move(text));
}

bool IsLowerHex(std::string_view text) {
  for (char c : text) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

// "'<text>' <what>", built by appending: GCC 12 at -O3 reports a false -Wrestrict overlap for
// "'" + std::string(text) (a known bug of its string-concatenation inlining).
std::string Quoted(std::string_view text, std::string_view what) {
  std::string message = "'";
  message.append(text).append("' ").append(what);
  return message;
}

int HexDigit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// A request's fields, with errors "invalid <type> request: field 'identity.mac': ...".
JsonFields RequestFields(const nlohmann::json& request, std::string_view type) {
  std::string origin = "invalid ";
  origin.append(type).append(" request");
  return JsonFields(request, std::move(origin));
}

Result<GuestIdentity> ParseIdentity(const JsonFields& request_fields) {
  FE_ASSIGN_OR_RETURN(const nlohmann::json* object, request_fields.Object("identity", JsonFields::kRequired));
  JsonFields fields = request_fields.Nested(*object, "identity");
  GuestIdentity identity;

  std::string mac;
  FE_RETURN_IF_ERROR(fields.String("mac", mac, JsonFields::kRequired));
  Result<MacAddress> mac_bytes = ParseMac(mac);
  if (!mac_bytes.ok()) return fields.Fail("mac", mac_bytes.status().message());
  identity.mac = *mac_bytes;

  std::string ipv4;
  FE_RETURN_IF_ERROR(fields.String("ipv4", ipv4, JsonFields::kRequired));
  Result<uint32_t> address = ParseIpv4(ipv4);
  if (!address.ok()) return fields.Fail("ipv4", address.status().message());
  identity.ipv4 = *address;

  FE_RETURN_IF_ERROR(fields.Number("prefix_length", identity.prefix_length, JsonFields::kRequired, 1, 32));

  // An empty (or absent) gateway means no default route; the engine's allocator always sends one.
  std::string gateway;
  FE_RETURN_IF_ERROR(fields.String("gateway", gateway, JsonFields::kOptional));
  if (!gateway.empty()) {
    Result<uint32_t> gateway_address = ParseIpv4(gateway);
    if (!gateway_address.ok()) return fields.Fail("gateway", gateway_address.status().message());
    identity.gateway = *gateway_address;
  }
  return identity;
}

}  // namespace

Result<MacAddress> ParseMac(std::string_view text) {
  MacAddress mac{};
  if (text.size() != 17) return Status::InvalidArgument(Quoted(text, "is not a MAC address"));
  for (size_t i = 0; i < mac.size(); ++i) {
    int high = HexDigit(text[i * 3]);
    int low = HexDigit(text[i * 3 + 1]);
    if (high < 0 || low < 0 || (i < 5 && text[i * 3 + 2] != ':')) {
      return Status::InvalidArgument(Quoted(text, "is not a MAC address"));
    }
    mac[i] = static_cast<uint8_t>(high << 4 | low);
  }
  if (mac[0] & 0x01) return Status::InvalidArgument(Quoted(text, "is a multicast address"));
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
    return Status::InvalidArgument(Quoted(text, "is not a dotted-quad IPv4 address"));
  }
  return address.s_addr;
}

std::string FormatIpv4(uint32_t address) {
  char text[INET_ADDRSTRLEN];
  in_addr value{address};
  ::inet_ntop(AF_INET, &value, text, sizeof(text));
  return text;
}

namespace {

// The request as a JSON object of version 1 whose type is `expected_type`.
Result<nlohmann::json> ParseEnvelope(std::string_view line, std::string_view expected_type) {
  nlohmann::json request = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (request.is_discarded() || !request.is_object()) return InvalidRequest(expected_type, "not a JSON object");

  // The version is checked first: a later version may change every other field.
  auto version = request.find("version");
  if (version == request.end() || !version->is_number_integer())
    return InvalidRequest(expected_type, "missing integer version");
  if (*version != kVersion) {
    return Status::Unsupported("protocol version " + version->dump() + " is not supported (this agent speaks 1)");
  }
  JsonFields fields = RequestFields(request, expected_type);
  std::string type;
  FE_RETURN_IF_ERROR(fields.String("type", type, JsonFields::kRequired));
  if (type != expected_type) return InvalidRequest(expected_type, "unknown request type '" + type + "'");
  return request;
}

Status ReadNonce(JsonFields& fields, std::string& nonce) {
  FE_RETURN_IF_ERROR(fields.String("nonce", nonce, JsonFields::kRequired));
  if (nonce.size() != 32 || !IsLowerHex(nonce)) return fields.Fail("nonce", "not 32 lower-case hex digits");
  return Status::Ok();
}

Status ReadHostTime(JsonFields& fields, int64_t& realtime_ns) {
  FE_ASSIGN_OR_RETURN(const nlohmann::json* host_time, fields.Object("host_time", JsonFields::kRequired));
  return fields.Nested(*host_time, "host_time").Number("realtime_ns", realtime_ns, JsonFields::kRequired, 1, INT64_MAX);
}

}  // namespace

std::string RequestType(std::string_view line) {
  nlohmann::json request = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (request.is_discarded() || !request.is_object()) return "";
  auto type = request.find("type");
  return type != request.end() && type->is_string() ? type->get<std::string>() : "";
}

namespace {

Status ReadIdentityFields(JsonFields& fields, IdentityRequest& parsed) {
  FE_RETURN_IF_ERROR(fields.Unsigned("generation", parsed.generation, JsonFields::kRequired, UINT64_MAX));
  FE_ASSIGN_OR_RETURN(parsed.identity, ParseIdentity(fields));

  std::string previous;
  FE_RETURN_IF_ERROR(fields.String("previous_mac", previous, JsonFields::kOptional));
  if (!previous.empty()) {
    Result<MacAddress> mac = ParseMac(previous);
    if (!mac.ok()) return fields.Fail("previous_mac", mac.status().message());
    parsed.has_previous_mac = true;
    parsed.previous_mac = *mac;
  }

  return ReadHostTime(fields, parsed.host_realtime_ns);
}

// A request of `type`: its envelope and nonce, then `read_rest` for its own fields.
template <typename Request, typename ReadRest>
Result<Request> ParseRequest(std::string_view line, std::string_view type, ReadRest read_rest) {
  Result<nlohmann::json> request = ParseEnvelope(line, type);
  if (!request.ok()) return request.status();
  JsonFields fields = RequestFields(*request, type);
  Request parsed;
  FE_RETURN_IF_ERROR(ReadNonce(fields, parsed.nonce));
  FE_RETURN_IF_ERROR(read_rest(fields, parsed));
  return parsed;
}

}  // namespace

Result<TimeRequest> ParseTimeRequest(std::string_view line) {
  return ParseRequest<TimeRequest>(line, "set_time", [](JsonFields& fields, TimeRequest& parsed) {
    return ReadHostTime(fields, parsed.host_realtime_ns);
  });
}

Result<FreezeRequest> ParseFreezeRequest(std::string_view line) {
  return ParseRequest<FreezeRequest>(line, "freeze", [](JsonFields& fields, FreezeRequest& parsed) {
    return fields.Number("thaw_after_ms", parsed.thaw_after_ms, JsonFields::kRequired, 1, kMaxThawAfterMs);
  });
}

Result<ThawRequest> ParseThawRequest(std::string_view line) {
  return ParseRequest<ThawRequest>(line, "thaw", [](JsonFields&, ThawRequest&) { return Status::Ok(); });
}

Result<IdentityRequest> ParseIdentityRequest(std::string_view line) {
  return ParseRequest<IdentityRequest>(line, "set_identity", ReadIdentityFields);
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

std::string EncodeTimeAck(std::string_view nonce) {
  Json ack = {{"type", "ack"}, {"version", kVersion}, {"nonce", std::string(nonce)}};
  return ack.dump() + "\n";
}

std::string EncodeFreezeAck(std::string_view nonce, const std::vector<std::string>& frozen) {
  Json ack = {{"type", "ack"}, {"version", kVersion}, {"nonce", std::string(nonce)}, {"frozen", frozen}};
  return ack.dump(-1, ' ', false, Json::error_handler_t::replace) + "\n";
}

std::string EncodeThawAck(std::string_view nonce, const std::vector<std::string>& thawed, bool held) {
  Json ack = {
      {"type", "ack"}, {"version", kVersion}, {"nonce", std::string(nonce)}, {"thawed", thawed}, {"held", held}};
  return ack.dump(-1, ' ', false, Json::error_handler_t::replace) + "\n";
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

}  // namespace fe::hypervisor::forkagent
