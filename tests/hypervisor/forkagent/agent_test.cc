// The agent's request handling with an applier that records calls: the generation rules, error
// replies, and a whole exchange with the host side's HandOffIdentity over a socketpair.
#include "hypervisor/forkagent/agent.h"

#include <gtest/gtest.h>
#include <sys/socket.h>

#include <functional>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "hypervisor/forkagent/channel.h"
#include "hypervisor/identity_handoff.h"

namespace fe::hypervisor::forkagent {
namespace {

using namespace std::chrono_literals;
using Json = nlohmann::json;

class RecordingApplier : public IdentityApplier {
 public:
  Status ApplyNetwork(const GuestIdentity& identity, const MacAddress* previous_mac) override {
    steps.push_back("network");
    networks.push_back(FormatMac(identity.mac) + " " + FormatIpv4(identity.ipv4) + "/" +
                       std::to_string(identity.prefix_length) + " via " + FormatIpv4(identity.gateway) + " on " +
                       (previous_mac == nullptr ? "the only NIC" : FormatMac(*previous_mac)));
    return network_result;
  }
  Status StepClock(int64_t realtime_ns) override {
    steps.push_back("clock");
    clocks.push_back(realtime_ns);
    if (clocks.size() <= clock_results.size()) return clock_results[clocks.size() - 1];
    return clock_result;
  }
  std::vector<std::string> steps;  // "clock", "network", in call order
  std::vector<std::string> networks;
  std::vector<int64_t> clocks;
  Status network_result;
  Status clock_result;
  std::vector<Status> clock_results;  // per call, when given (then clock_result after them)
};

// Records freezes and thaws; a freeze holds until Thaw unless `deadline_passed` says its deadline thawed it.
class RecordingFreezer : public FilesystemFreezer {
 public:
  Result<std::vector<std::string>> Freeze(std::chrono::milliseconds thaw_after) override {
    steps.push_back("freeze " + std::to_string(thaw_after.count()));
    if (!freeze_result.ok()) return freeze_result;
    frozen = true;
    return mounts;
  }
  Result<ThawOutcome> Thaw() override {
    steps.push_back("thaw");
    ThawOutcome outcome;
    outcome.held = frozen && !deadline_passed;
    if (frozen) outcome.thawed = mounts;
    frozen = false;
    return outcome;
  }
  std::vector<std::string> steps;
  std::vector<std::string> mounts = {"/data", "/"};
  Status freeze_result;
  bool frozen = false;
  bool deadline_passed = false;
};

std::string Request(uint64_t generation, const std::string& nonce = std::string(32, 'a')) {
  hypervisor::IdentityHandoff handoff;
  handoff.identity = hypervisor::NetworkIdentity{"tap0", "02:fe:0a:64:00:05", "10.100.0.5", 16, "10.100.0.1", 3};
  handoff.previous_mac = "02:fe:0a:64:00:02";
  handoff.generation = generation;
  std::string line = hypervisor::EncodeIdentityRequest(handoff, nonce, 1700000000000000000);
  line.pop_back();
  return line;
}

TEST(ForkagentAgentTest, AppliesNetworkAndClockThenAcks) {
  RecordingApplier applier;
  Agent agent(applier);
  HandledRequest handled = agent.Handle(Request(7));
  EXPECT_TRUE(handled.acknowledged) << handled.reply;
  EXPECT_EQ(Json::parse(handled.reply), Json::parse(EncodeAck(std::string(32, 'a'), 7)));
  EXPECT_EQ(applier.networks,
            std::vector<std::string>{"02:fe:0a:64:00:05 10.100.0.5/16 via 10.100.0.1 on 02:fe:0a:64:00:02"});
  EXPECT_EQ(applier.clocks, std::vector<int64_t>{1700000000000000000});
  EXPECT_EQ(agent.applied_generation(), 7u);
}

// The request carries the host's time when it was sent; the network apply that follows takes long
// enough in a slow guest that a clock stepped after it would be visibly behind.
TEST(ForkagentAgentTest, ClockIsSteppedBeforeTheNetworkIsApplied) {
  RecordingApplier applier;
  Agent agent(applier);
  ASSERT_TRUE(agent.Handle(Request(7)).acknowledged);
  EXPECT_EQ(applier.steps, (std::vector<std::string>{"clock", "network"}));
}

TEST(ForkagentAgentTest, LowerGenerationIsRefusedAsStaleWithoutApplying) {
  RecordingApplier applier;
  Agent agent(applier);
  ASSERT_TRUE(agent.Handle(Request(7)).acknowledged);
  HandledRequest handled = agent.Handle(Request(6, std::string(32, 'b')));
  EXPECT_FALSE(handled.acknowledged);
  Json reply = Json::parse(handled.reply);
  EXPECT_EQ(reply["type"], "error");
  EXPECT_EQ(reply["code"], "stale_generation");
  EXPECT_EQ(reply["nonce"], std::string(32, 'b'));
  EXPECT_EQ(applier.networks.size(), 1u);
  EXPECT_EQ(applier.clocks.size(), 1u);
  EXPECT_EQ(agent.applied_generation(), 7u);
}

TEST(ForkagentAgentTest, EqualGenerationIsReappliedAndAcked) {
  RecordingApplier applier;
  Agent agent(applier);
  ASSERT_TRUE(agent.Handle(Request(7)).acknowledged);
  EXPECT_TRUE(agent.Handle(Request(7, std::string(32, 'c'))).acknowledged);
  EXPECT_EQ(applier.networks.size(), 2u);
  EXPECT_TRUE(agent.Handle(Request(8)).acknowledged);
  EXPECT_EQ(agent.applied_generation(), 8u);
}

TEST(ForkagentAgentTest, FailedApplyAnswersApplyFailedWithTheStepAndKeepsTheOldGeneration) {
  RecordingApplier applier;
  Agent agent(applier);
  ASSERT_TRUE(agent.Handle(Request(3)).acknowledged);
  applier.network_result = Status::FromErrno(EADDRNOTAVAIL, "netlink RTM_NEWLINK IFLA_ADDRESS (set MAC) on", "eth0");
  HandledRequest handled = agent.Handle(Request(4));
  EXPECT_FALSE(handled.acknowledged);
  Json reply = Json::parse(handled.reply);
  EXPECT_EQ(reply["code"], "apply_failed");
  EXPECT_EQ(reply["message"], "netlink RTM_NEWLINK IFLA_ADDRESS (set MAC) on eth0: Cannot assign requested address");
  EXPECT_EQ(applier.clocks.size(), 2u) << "the clock is stepped even when the network failed";
  EXPECT_EQ(agent.applied_generation(), 3u);
  // A retry of the failed generation is not stale.
  applier.network_result = Status::Ok();
  EXPECT_TRUE(agent.Handle(Request(4)).acknowledged);
}

TEST(ForkagentAgentTest, FailedClockStepIsApplyFailed) {
  RecordingApplier applier;
  applier.clock_result = Status::FromErrno(EPERM, "clock_settime", "CLOCK_REALTIME");
  Agent agent(applier);
  HandledRequest handled = agent.Handle(Request(1));
  EXPECT_FALSE(handled.acknowledged);
  EXPECT_EQ(Json::parse(handled.reply)["code"], "apply_failed");
  EXPECT_FALSE(agent.applied_generation().has_value());
}

TEST(ForkagentAgentTest, InvalidAndUnsupportedRequestsAreAnsweredWithoutApplying) {
  RecordingApplier applier;
  Agent agent(applier);
  Json request = Json::parse(Request(1));
  request["version"] = 9;
  Json unsupported = Json::parse(agent.Handle(request.dump()).reply);
  EXPECT_EQ(unsupported["code"], "unsupported_version");
  EXPECT_EQ(unsupported["nonce"], std::string(32, 'a'));
  Json invalid = Json::parse(agent.Handle("hello").reply);
  EXPECT_EQ(invalid["code"], "invalid_request");
  EXPECT_EQ(invalid["nonce"], "");
  EXPECT_TRUE(applier.networks.empty());
  EXPECT_TRUE(applier.clocks.empty());
}

// The agent on the guest end of a socketpair (a serial-style channel), answering `lines` requests on a
// thread of its own; `answer` may change a reply (an older agent) or the applier (a failure).
class AgentOnSocketpair {
 public:
  AgentOnSocketpair(int lines, std::function<std::string(int, const std::string&, std::string)> answer = nullptr,
                    bool can_freeze = true)
      : agent_(applier, can_freeze ? &freezer : nullptr) {
    int fds[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) return;
    host = UniqueFd(fds[0]);
    channel_ = SerialChannelOnFd(UniqueFd(fds[1]), "socketpair");
    guest_ = std::thread([this, lines, answer] {
      for (int i = 0; i < lines; ++i) {
        Result<std::string> line = channel_->ReadLine();
        if (!line.ok()) return;
        std::string reply = agent_.Handle(*line).reply;
        if (answer) reply = answer(i, *line, std::move(reply));
        EXPECT_TRUE(channel_->Write(reply).ok());
      }
    });
  }
  ~AgentOnSocketpair() { Join(); }
  void Join() {
    if (guest_.joinable()) guest_.join();
  }
  UniqueFd host;
  RecordingApplier applier;
  RecordingFreezer freezer;

 private:
  Agent agent_;
  std::unique_ptr<Channel> channel_;
  std::thread guest_;
};

// The real host side talks to the agent over a serial-style channel: the ack is accepted, and the
// guest's refusal comes back to the host as an error naming the code.
TEST(ForkagentAgentTest, HostHandOffIsAcknowledgedOverAChannel) {
  AgentOnSocketpair guest(2);
  ASSERT_TRUE(guest.host);
  const UniqueFd& host = guest.host;
  RecordingApplier& applier = guest.applier;
  hypervisor::IdentityHandoff handoff;
  handoff.identity = hypervisor::NetworkIdentity{"tap0", "02:fe:0a:64:00:09", "10.100.0.9", 16, "10.100.0.1", 3};
  handoff.generation = 5;
  Status first = hypervisor::HandOffIdentity(host.get(), handoff, 10s, "agent on a socketpair");
  EXPECT_TRUE(first.ok()) << first.ToString();
  handoff.generation = 4;
  Status second = hypervisor::HandOffIdentity(host.get(), handoff, 10s, "agent on a socketpair");
  EXPECT_FALSE(second.ok());
  EXPECT_NE(second.message().find("stale_generation"), std::string::npos) << second.ToString();
  guest.Join();
  EXPECT_EQ(applier.networks,
            std::vector<std::string>{"02:fe:0a:64:00:09 10.100.0.9/16 via 10.100.0.1 on the only NIC"});
}

TEST(ForkagentAgentTest, SetTimeStepsOnlyTheClockAndAcksWithoutAGeneration) {
  RecordingApplier applier;
  Agent agent(applier);
  std::string line = hypervisor::EncodeTimeRequest(std::string(32, 'b'), 1700000000123456789);
  line.pop_back();
  HandledRequest handled = agent.Handle(line);
  EXPECT_TRUE(handled.acknowledged) << handled.reply;
  EXPECT_EQ(Json::parse(handled.reply), Json::parse(EncodeTimeAck(std::string(32, 'b'))));
  EXPECT_FALSE(Json::parse(handled.reply).contains("generation"));
  EXPECT_EQ(applier.steps, std::vector<std::string>{"clock"});
  EXPECT_EQ(applier.clocks, std::vector<int64_t>{1700000000123456789});
}

TEST(ForkagentAgentTest, SetTimeWithoutHostTimeIsAnInvalidRequestAndStepsNothing) {
  RecordingApplier applier;
  Agent agent(applier);
  HandledRequest handled =
      agent.Handle(R"({"type": "set_time", "version": 1, "nonce": ")" + std::string(32, 'c') + R"("})");
  EXPECT_FALSE(handled.acknowledged);
  Json reply = Json::parse(handled.reply);
  EXPECT_EQ(reply["code"], "invalid_request");
  EXPECT_EQ(reply["nonce"], std::string(32, 'c'));
  EXPECT_NE(reply["message"].get<std::string>().find("host_time"), std::string::npos) << handled.reply;
  EXPECT_TRUE(applier.steps.empty());
}

// The host's SetGuestClock against the agent: acknowledged; against an agent that fails to step the
// clock, an error naming the code; against one that predates set_time, Unsupported.
TEST(ForkagentAgentTest, HostSetsTheGuestClockOverAChannelAndTellsAnOldAgentApart) {
  // The second request fails to step the clock; the third answer is what an agent without set_time says.
  AgentOnSocketpair guest(3, [](int i, const std::string& line, std::string reply) {
    return i == 2 ? EncodeError(NonceOf(line), kInvalidRequest, "unknown request type 'set_time'") : reply;
  });
  ASSERT_TRUE(guest.host);
  const UniqueFd& host = guest.host;
  RecordingApplier& applier = guest.applier;
  applier.clock_results = {Status::Ok(), Status::Io("clock_settime: Operation not permitted"), Status::Ok()};
  Status set = hypervisor::SetGuestClock(host.get(), 10s, "agent on a socketpair");
  EXPECT_TRUE(set.ok()) << set.ToString();
  Status failed = hypervisor::SetGuestClock(host.get(), 10s, "agent on a socketpair");
  EXPECT_EQ(failed.code(), ErrorCode::kIo) << failed.ToString();
  EXPECT_NE(failed.message().find("apply_failed"), std::string::npos) << failed.ToString();
  Status old = hypervisor::SetGuestClock(host.get(), 10s, "agent on a socketpair");
  EXPECT_EQ(old.code(), ErrorCode::kUnsupported) << old.ToString();
  guest.Join();
  EXPECT_EQ(applier.clocks.size(), 3u);
  EXPECT_TRUE(applier.networks.empty());
}

std::string FreezeRequest(int64_t thaw_after_ms) {
  return Json{{"type", "freeze"}, {"version", 1}, {"nonce", std::string(32, 'f')}, {"thaw_after_ms", thaw_after_ms}}
      .dump();
}

std::string ThawRequest() { return Json{{"type", "thaw"}, {"version", 1}, {"nonce", std::string(32, 'e')}}.dump(); }

TEST(ForkagentAgentTest, FreezeIsAnsweredWithTheFrozenMountsAndThawWithWhetherTheFreezeHeld) {
  RecordingApplier applier;
  RecordingFreezer freezer;
  Agent agent(applier, &freezer);
  HandledRequest frozen = agent.Handle(FreezeRequest(5000));
  ASSERT_TRUE(frozen.acknowledged) << frozen.reply;
  Json ack = Json::parse(frozen.reply);
  EXPECT_EQ(ack["nonce"], std::string(32, 'f'));
  EXPECT_EQ(ack["frozen"], Json::array({"/data", "/"}));
  HandledRequest thawed = agent.Handle(ThawRequest());
  ASSERT_TRUE(thawed.acknowledged) << thawed.reply;
  ack = Json::parse(thawed.reply);
  EXPECT_EQ(ack["thawed"], Json::array({"/data", "/"}));
  EXPECT_EQ(ack["held"], true);
  EXPECT_EQ(freezer.steps, (std::vector<std::string>{"freeze 5000", "thaw"}));
}

TEST(ForkagentAgentTest, ThawAfterTheFreezeDeadlineSaysTheFreezeDidNotHold) {
  RecordingApplier applier;
  RecordingFreezer freezer;
  Agent agent(applier, &freezer);
  ASSERT_TRUE(agent.Handle(FreezeRequest(1)).acknowledged);
  freezer.deadline_passed = true;
  Json ack = Json::parse(agent.Handle(ThawRequest()).reply);
  EXPECT_EQ(ack["held"], false) << ack.dump();
}

TEST(ForkagentAgentTest, FreezeRequestsWithoutAValidDeadlineAreRefusedAndFreezeNothing) {
  RecordingApplier applier;
  RecordingFreezer freezer;
  Agent agent(applier, &freezer);
  for (int64_t thaw_after : {int64_t{0}, int64_t{-1}, kMaxThawAfterMs + 1}) {
    HandledRequest handled = agent.Handle(FreezeRequest(thaw_after));
    EXPECT_FALSE(handled.acknowledged) << thaw_after;
    EXPECT_EQ(Json::parse(handled.reply)["code"], "invalid_request") << handled.reply;
    EXPECT_NE(handled.reply.find("thaw_after_ms"), std::string::npos) << handled.reply;
  }
  EXPECT_TRUE(freezer.steps.empty());
}

TEST(ForkagentAgentTest, AFreezeTheGuestCannotMakeIsAnErrorWithItsReason) {
  RecordingApplier applier;
  RecordingFreezer freezer;
  freezer.freeze_result = Status::FailedPrecondition("swap on /dev/vdb writes to a disk past any filesystem freeze");
  Agent agent(applier, &freezer);
  HandledRequest handled = agent.Handle(FreezeRequest(5000));
  EXPECT_FALSE(handled.acknowledged);
  Json error = Json::parse(handled.reply);
  EXPECT_EQ(error["code"], "apply_failed");
  EXPECT_NE(error["message"].get<std::string>().find("/dev/vdb"), std::string::npos) << handled.reply;
}

// A fork restored from RAM captured during its source's freeze starts thawed: the identity thaws first.
TEST(ForkagentAgentTest, SetIdentityThawsAGuestThatWasFrozen) {
  RecordingApplier applier;
  RecordingFreezer freezer;
  Agent agent(applier, &freezer);
  ASSERT_TRUE(agent.Handle(FreezeRequest(60000)).acknowledged);
  ASSERT_TRUE(agent.Handle(Request(3)).acknowledged);
  EXPECT_EQ(freezer.steps, (std::vector<std::string>{"freeze 60000", "thaw"}));
  EXPECT_FALSE(freezer.frozen);
}

// The host's FreezeGuestFilesystems and ThawGuestFilesystems over a channel, and an agent that predates
// them, which the host sees as Unsupported.
TEST(ForkagentAgentTest, HostFreezesAndThawsOverAChannel) {
  AgentOnSocketpair guest(2);
  ASSERT_TRUE(guest.host);
  Result<std::vector<std::string>> frozen =
      hypervisor::FreezeGuestFilesystems(guest.host.get(), 30s, 10s, "agent on a socketpair");
  ASSERT_TRUE(frozen.ok()) << frozen.status().ToString();
  EXPECT_EQ(*frozen, (std::vector<std::string>{"/data", "/"}));
  Result<hypervisor::GuestThaw> thawed =
      hypervisor::ThawGuestFilesystems(guest.host.get(), 10s, "agent on a socketpair");
  ASSERT_TRUE(thawed.ok()) << thawed.status().ToString();
  EXPECT_TRUE(thawed->held);
  EXPECT_EQ(thawed->thawed, (std::vector<std::string>{"/data", "/"}));
  guest.Join();
  EXPECT_EQ(guest.freezer.steps, (std::vector<std::string>{"freeze 30000", "thaw"}));

  AgentOnSocketpair old_agent(1, nullptr, /*can_freeze=*/false);
  Result<std::vector<std::string>> refused =
      hypervisor::FreezeGuestFilesystems(old_agent.host.get(), 30s, 10s, "an older agent");
  EXPECT_EQ(refused.status().code(), ErrorCode::kUnsupported) << refused.status().ToString();
  EXPECT_NE(refused.status().message().find("an older agent"), std::string::npos) << refused.status().ToString();
}

// A guest that answers it cannot be frozen is told from a broken channel: FailedPrecondition, its reason.
TEST(ForkagentAgentTest, HostSeesAGuestThatRefusesTheFreezeAsFailedPreconditionWithItsReason) {
  AgentOnSocketpair guest(1);
  ASSERT_TRUE(guest.host);
  guest.freezer.freeze_result = Status::FailedPrecondition("swap on /dev/vdc writes to a disk past any freeze");
  Result<std::vector<std::string>> refused =
      hypervisor::FreezeGuestFilesystems(guest.host.get(), 30s, 10s, "agent on a socketpair");
  EXPECT_EQ(refused.status().code(), ErrorCode::kFailedPrecondition) << refused.status().ToString();
  EXPECT_NE(refused.status().message().find("/dev/vdc"), std::string::npos) << refused.status().ToString();
}

}  // namespace
}  // namespace fe::hypervisor::forkagent
