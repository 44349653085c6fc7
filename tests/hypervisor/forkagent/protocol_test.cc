// The agent's request parsing and reply encoding, checked against the host side's own encoder
// (hypervisor/identity_handoff.h) so both halves agree on the wire format.
#include "hypervisor/forkagent/protocol.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <functional>

#include <nlohmann/json.hpp>

#include "hypervisor/identity_handoff.h"

namespace fe::hypervisor::forkagent {
namespace {

using Json = nlohmann::json;

constexpr char kNonce[] = "0123456789abcdef0123456789abcdef";

hypervisor::IdentityHandoff Handoff() {
  hypervisor::IdentityHandoff handoff;
  handoff.identity = hypervisor::NetworkIdentity{"fe0a640005", "02:fe:0a:64:00:05", "10.100.0.5", 16, "10.100.0.1", 3};
  handoff.previous_mac = "02:fe:0a:64:00:02";
  handoff.generation = 7;
  return handoff;
}

// The host's request line without its '\n', edited by `edit`.
std::string Request(const std::function<void(Json&)>& edit = [](Json&) {}) {
  std::string line = hypervisor::EncodeIdentityRequest(Handoff(), kNonce, 1732550000123456789);
  Json request = Json::parse(line);
  edit(request);
  return request.dump();
}

TEST(ForkagentProtocolTest, ParsesTheHostsRequest) {
  std::string line = hypervisor::EncodeIdentityRequest(Handoff(), kNonce, 1732550000123456789);
  ASSERT_EQ(line.back(), '\n');
  line.pop_back();
  Result<IdentityRequest> request = ParseIdentityRequest(line);
  ASSERT_TRUE(request.ok()) << request.status().ToString();
  EXPECT_EQ(request->nonce, kNonce);
  EXPECT_EQ(request->generation, 7u);
  EXPECT_EQ(FormatMac(request->identity.mac), "02:fe:0a:64:00:05");
  EXPECT_EQ(FormatIpv4(request->identity.ipv4), "10.100.0.5");
  EXPECT_EQ(request->identity.ipv4, inet_addr("10.100.0.5"));
  EXPECT_EQ(request->identity.prefix_length, 16);
  EXPECT_EQ(FormatIpv4(request->identity.gateway), "10.100.0.1");
  ASSERT_TRUE(request->has_previous_mac);
  EXPECT_EQ(FormatMac(request->previous_mac), "02:fe:0a:64:00:02");
  EXPECT_EQ(request->host_realtime_ns, 1732550000123456789);
}

TEST(ForkagentProtocolTest, EmptyPreviousMacMeansTheOnlyNic) {
  Result<IdentityRequest> request = ParseIdentityRequest(Request([](Json& r) { r["previous_mac"] = ""; }));
  ASSERT_TRUE(request.ok()) << request.status().ToString();
  EXPECT_FALSE(request->has_previous_mac);
}

TEST(ForkagentProtocolTest, UnknownFieldsAreIgnored) {
  Result<IdentityRequest> request = ParseIdentityRequest(Request([](Json& r) {
    r["future"] = {1, 2};
    r["identity"]["mtu"] = 9000;
  }));
  EXPECT_TRUE(request.ok()) << request.status().ToString();
}

TEST(ForkagentProtocolTest, OtherVersionIsUnsupportedVersion) {
  std::string line = Request([](Json& r) {
    r["version"] = 2;
    r.erase("identity");  // a later version may change anything else: the version is judged first
  });
  Result<IdentityRequest> request = ParseIdentityRequest(line);
  ASSERT_FALSE(request.ok());
  EXPECT_EQ(request.status().code(), ErrorCode::kUnsupported);
  EXPECT_EQ(RejectionCode(request.status()), kUnsupportedVersion);
  EXPECT_EQ(NonceOf(line), kNonce);
}

TEST(ForkagentProtocolTest, MalformedFieldsAreInvalidRequestsNamingTheField) {
  struct Case {
    std::function<void(Json&)> edit;
    std::string field;
  };
  const std::vector<Case> cases = {
      {[](Json& r) { r["type"] = "get_identity"; }, "get_identity"},
      {[](Json& r) { r.erase("version"); }, "version"},
      {[](Json& r) { r["nonce"] = "0123"; }, "nonce"},
      {[](Json& r) { r["nonce"] = "0123456789ABCDEF0123456789ABCDEF"; }, "nonce"},
      {[](Json& r) { r["generation"] = -1; }, "generation"},
      {[](Json& r) { r["generation"] = "7"; }, "generation"},
      {[](Json& r) { r.erase("identity"); }, "identity"},
      {[](Json& r) { r["identity"]["mac"] = "02:fe:0a:64:00"; }, "identity.mac"},
      {[](Json& r) { r["identity"]["mac"] = "03:fe:0a:64:00:05"; }, "multicast"},
      {[](Json& r) { r["identity"]["ipv4"] = "10.100.0"; }, "identity.ipv4"},
      {[](Json& r) { r["identity"]["prefix_length"] = 33; }, "prefix_length"},
      {[](Json& r) { r["identity"]["gateway"] = "gw"; }, "identity.gateway"},
      {[](Json& r) { r["previous_mac"] = "xx"; }, "previous_mac"},
      {[](Json& r) { r.erase("host_time"); }, "host_time"},
      {[](Json& r) { r["host_time"]["realtime_ns"] = 0; }, "realtime_ns"},
  };
  for (const Case& c : cases) {
    const std::string line = Request(c.edit);
    Result<IdentityRequest> request = ParseIdentityRequest(line);
    ASSERT_FALSE(request.ok()) << line;
    EXPECT_EQ(request.status().code(), ErrorCode::kInvalidArgument) << line;
    EXPECT_EQ(RejectionCode(request.status()), kInvalidRequest) << line;
    EXPECT_NE(request.status().message().find(c.field), std::string::npos) << request.status().message();
  }
  EXPECT_FALSE(ParseIdentityRequest("not json").ok());
  EXPECT_FALSE(ParseIdentityRequest("[1]").ok());
}

TEST(ForkagentProtocolTest, NonceOfEchoesOnlyWellFormedNonces) {
  EXPECT_EQ(NonceOf(Request([](Json& r) { r.erase("identity"); })), kNonce);
  EXPECT_EQ(NonceOf(Request([](Json& r) { r["nonce"] = "\"}{"; })), "");
  EXPECT_EQ(NonceOf("{broken"), "");
}

TEST(ForkagentProtocolTest, RepliesAreOneJsonLineEach) {
  std::string ack = EncodeAck(kNonce, 7);
  ASSERT_EQ(ack.back(), '\n');
  EXPECT_EQ(ack.find('\n'), ack.size() - 1);
  EXPECT_EQ(Json::parse(ack), Json::parse(R"({"type": "ack", "version": 1, "nonce": ")" + std::string(kNonce) +
                                          R"(", "generation": 7})"));

  Json error = Json::parse(EncodeError(kNonce, kApplyFailed, "line one\nline two \xff"));
  EXPECT_EQ(error["type"], "error");
  EXPECT_EQ(error["version"], 1);
  EXPECT_EQ(error["nonce"], kNonce);
  EXPECT_EQ(error["code"], "apply_failed");
  EXPECT_EQ(error["message"].get<std::string>().substr(0, 18), "line one\nline two ");
  EXPECT_FALSE(error.contains("supported"));

  Json unsupported = Json::parse(EncodeError("", kUnsupportedVersion, "version 2"));
  EXPECT_EQ(unsupported["supported"], Json::array({1}));
}

TEST(ForkagentProtocolTest, MacAndIpv4RoundTrip) {
  Result<MacAddress> mac = ParseMac("02:FE:0a:64:00:05");
  ASSERT_TRUE(mac.ok());
  EXPECT_EQ(FormatMac(*mac), "02:fe:0a:64:00:05");
  EXPECT_FALSE(ParseMac("02-fe-0a-64-00-05").ok());
  EXPECT_FALSE(ParseMac("02:fe:0a:64:00:0g").ok());
  Result<uint32_t> address = ParseIpv4("192.168.1.20");
  ASSERT_TRUE(address.ok());
  EXPECT_EQ(FormatIpv4(*address), "192.168.1.20");
  EXPECT_FALSE(ParseIpv4("192.168.1.256").ok());
}

}  // namespace
}  // namespace fe::hypervisor::forkagent
