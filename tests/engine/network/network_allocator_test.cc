// The network allocator: what it hands out, exhaustion, release, persistence across reopening,
// concurrent allocation, unknown fields and refusing a corrupt, foreign or locked state.
#include "engine/network/network_allocator.h"

#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include <csignal>

#include <optional>
#include <set>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/deferred_sync.h"
#include "tests/support/file_util.h"
#include "tests/support/temp_dir.h"

namespace fe::engine::network {
namespace {

// "02:fe:" followed by four lower-case hex octets.
bool IsForkengineMac(const std::string& mac) {
  if (mac.size() != 17 || mac.substr(0, 6) != "02:fe:") return false;
  for (size_t i = 6; i < mac.size(); ++i) {
    bool colon = i % 3 == 2;
    char c = mac[i];
    if (colon ? c != ':' : !((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

// While it lives, no file of this process may grow past the journal's current size (RLIMIT_FSIZE):
// its next append fails with EFBIG, as on a full disk, without touching the filesystem.
class JournalCannotGrow {
 public:
  explicit JournalCannotGrow(const std::string& journal) {
    struct stat st {};
    EXPECT_EQ(::stat(journal.c_str(), &st), 0) << journal;
    EXPECT_EQ(::getrlimit(RLIMIT_FSIZE, &saved_), 0);
    previous_handler_ = ::signal(SIGXFSZ, SIG_IGN);
    rlimit limit = saved_;
    limit.rlim_cur = static_cast<rlim_t>(st.st_size);
    EXPECT_EQ(::setrlimit(RLIMIT_FSIZE, &limit), 0);
  }
  ~JournalCannotGrow() {
    ::setrlimit(RLIMIT_FSIZE, &saved_);
    ::signal(SIGXFSZ, previous_handler_);
  }
  JournalCannotGrow(const JournalCannotGrow&) = delete;
  JournalCannotGrow& operator=(const JournalCannotGrow&) = delete;

 private:
  rlimit saved_{};
  sighandler_t previous_handler_ = SIG_DFL;
};

using hypervisor::NetworkIdentity;
using test::ReadFile;
using test::TempDir;
using test::WriteFile;

class NetworkAllocatorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Result<TempDir> dir = TempDir::Create();
    ASSERT_TRUE(dir.ok()) << dir.status().ToString();
    dir_.emplace(std::move(*dir));
    state_dir_ = dir_->Sub("state/network");
  }

  static NetworkPoolConfig Pool(std::string subnet) {
    NetworkPoolConfig config;
    config.subnet = std::move(subnet);
    return config;
  }

  std::unique_ptr<NetworkAllocator> Open(const NetworkPoolConfig& config) {
    Result<std::unique_ptr<NetworkAllocator>> allocator = NetworkAllocator::Open(state_dir_, config);
    EXPECT_TRUE(allocator.ok()) << allocator.status().ToString();
    return allocator.ok() ? std::move(*allocator) : nullptr;
  }

  std::string StatePath() const { return state_dir_ + "/network.json"; }
  std::string JournalPath() const { return state_dir_ + "/network.journal"; }

  std::optional<TempDir> dir_;
  std::string state_dir_;
};

// Every resource of every lease is distinct from the same resource of every other lease.
void ExpectAllDistinct(const std::map<std::string, NetworkIdentity>& leases) {
  std::set<std::string> ips, macs, taps;
  std::set<uint32_t> cids;
  for (const auto& [id, identity] : leases) {
    EXPECT_TRUE(ips.insert(identity.ipv4).second) << "ip " << identity.ipv4 << " of " << id;
    EXPECT_TRUE(macs.insert(identity.mac).second) << "mac " << identity.mac << " of " << id;
    EXPECT_TRUE(taps.insert(identity.tap_device).second) << "tap " << identity.tap_device << " of " << id;
    EXPECT_TRUE(cids.insert(identity.vsock_cid).second) << "cid " << identity.vsock_cid << " of " << id;
  }
}

TEST_F(NetworkAllocatorTest, IdentityHasValidMacTapCidAndSubnetFacts) {
  auto allocator = Open(Pool("10.100.0.0/16"));
  ASSERT_NE(allocator, nullptr);
  Result<NetworkIdentity> identity = allocator->Allocate("vm-1");
  ASSERT_TRUE(identity.ok()) << identity.status().ToString();
  EXPECT_EQ(identity->ipv4, "10.100.0.2");  // .0 is the network, .1 the default gateway
  EXPECT_EQ(identity->gateway, "10.100.0.1");
  EXPECT_EQ(identity->prefix_length, 16);
  EXPECT_TRUE(IsForkengineMac(identity->mac)) << identity->mac;
  const int first_octet = std::stoi(identity->mac.substr(0, 2), nullptr, 16);
  EXPECT_EQ(first_octet & 0x02, 0x02) << "locally administered";
  EXPECT_EQ(first_octet & 0x01, 0x00) << "unicast";
  EXPECT_LE(identity->tap_device.size(), 15u);
  EXPECT_EQ(identity->tap_device, "fe0a640002");
  EXPECT_GE(identity->vsock_cid, 3u);
  EXPECT_NE(identity->vsock_cid, 0xffffffffu);
}

TEST_F(NetworkAllocatorTest, ExhaustionSkipsNetworkGatewayBroadcastAndNamesSubnet) {
  NetworkPoolConfig config = Pool("192.168.7.0/29");
  config.gateway = "192.168.7.4";
  auto allocator = Open(config);
  ASSERT_NE(allocator, nullptr);
  EXPECT_EQ(allocator->Capacity(), 5u);
  std::set<std::string> addresses;
  for (int i = 0; i < 5; ++i) {
    Result<NetworkIdentity> identity = allocator->Allocate("vm-" + std::to_string(i));
    ASSERT_TRUE(identity.ok()) << identity.status().ToString();
    addresses.insert(identity->ipv4);
  }
  EXPECT_EQ(addresses,
            (std::set<std::string>{"192.168.7.1", "192.168.7.2", "192.168.7.3", "192.168.7.5", "192.168.7.6"}));
  Result<NetworkIdentity> none = allocator->Allocate("vm-5");
  ASSERT_FALSE(none.ok());
  EXPECT_EQ(none.status().code(), ErrorCode::kInsufficientResources);
  EXPECT_NE(none.status().message().find("192.168.7.0/29"), std::string::npos) << none.status().ToString();
  EXPECT_EQ(allocator->Leases().size(), 5u);
}

TEST_F(NetworkAllocatorTest, ReleaseMakesResourcesLeasableAgain) {
  auto allocator = Open(Pool("10.0.0.0/29"));
  ASSERT_NE(allocator, nullptr);
  std::map<std::string, NetworkIdentity> first;
  for (int i = 0; i < 5; ++i) {
    Result<NetworkIdentity> identity = allocator->Allocate("vm-" + std::to_string(i));
    ASSERT_TRUE(identity.ok()) << identity.status().ToString();
    first.emplace("vm-" + std::to_string(i), *identity);
  }
  ASSERT_TRUE(allocator->Release("vm-2").ok());
  EXPECT_FALSE(allocator->Find("vm-2").has_value());
  EXPECT_TRUE(allocator->Release("vm-2").ok()) << "release is idempotent";
  EXPECT_TRUE(allocator->Release("never-leased").ok());
  Result<NetworkIdentity> again = allocator->Allocate("vm-new");
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ(again->ipv4, first["vm-2"].ipv4);
  EXPECT_EQ(again->mac, first["vm-2"].mac);
  EXPECT_EQ(again->tap_device, first["vm-2"].tap_device);
  EXPECT_EQ(again->vsock_cid, first["vm-2"].vsock_cid);
  ExpectAllDistinct(allocator->Leases());
}

TEST_F(NetworkAllocatorTest, ReleasedAddressIsTheLastToComeBack) {
  auto allocator = Open(Pool("10.0.0.0/24"));
  ASSERT_NE(allocator, nullptr);
  Result<NetworkIdentity> a = allocator->Allocate("a");
  ASSERT_TRUE(a.ok());
  ASSERT_TRUE(allocator->Release("a").ok());
  Result<NetworkIdentity> b = allocator->Allocate("b");
  ASSERT_TRUE(b.ok());
  EXPECT_NE(a->ipv4, b->ipv4) << "next-fit moves on past a just-released address";
}

TEST_F(NetworkAllocatorTest, SecondLeaseForOneInstanceIsRefused) {
  auto allocator = Open(Pool("10.0.0.0/24"));
  ASSERT_NE(allocator, nullptr);
  ASSERT_TRUE(allocator->Allocate("vm").ok());
  Result<NetworkIdentity> twice = allocator->Allocate("vm");
  ASSERT_FALSE(twice.ok());
  EXPECT_EQ(twice.status().code(), ErrorCode::kAlreadyExists);
  EXPECT_EQ(allocator->Allocate("").status().code(), ErrorCode::kInvalidArgument);
}

TEST_F(NetworkAllocatorTest, LeasesAndCursorSurviveReopen) {
  std::map<std::string, NetworkIdentity> before;
  {
    auto allocator = Open(Pool("10.0.0.0/24"));
    ASSERT_NE(allocator, nullptr);
    for (const char* id : {"a", "b", "c"}) ASSERT_TRUE(allocator->Allocate(id).ok());
    ASSERT_TRUE(allocator->Release("c").ok());
    before = allocator->Leases();
  }
  auto reopened = Open(Pool("10.0.0.0/24"));
  ASSERT_NE(reopened, nullptr);
  std::map<std::string, NetworkIdentity> after = reopened->Leases();
  ASSERT_EQ(after.size(), 2u);
  for (const auto& [id, identity] : before) {
    ASSERT_TRUE(after.count(id)) << id;
    EXPECT_EQ(after[id].ipv4, identity.ipv4);
    EXPECT_EQ(after[id].mac, identity.mac);
    EXPECT_EQ(after[id].tap_device, identity.tap_device);
    EXPECT_EQ(after[id].vsock_cid, identity.vsock_cid);
    EXPECT_EQ(after[id].gateway, "10.0.0.1");
    EXPECT_EQ(after[id].prefix_length, 24);
  }
  Result<NetworkIdentity> d = reopened->Allocate("d");
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  EXPECT_EQ(d->ipv4, "10.0.0.5") << "the cursor was persisted: c's 10.0.0.4 is not reused first";
  ExpectAllDistinct(reopened->Leases());
}

TEST_F(NetworkAllocatorTest, StateDirectoryIsLockedWhileOpen) {
  auto allocator = Open(Pool("10.0.0.0/24"));
  ASSERT_NE(allocator, nullptr);
  Result<std::unique_ptr<NetworkAllocator>> second = NetworkAllocator::Open(state_dir_, Pool("10.0.0.0/24"));
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), ErrorCode::kBusy);
  allocator.reset();
  EXPECT_TRUE(NetworkAllocator::Open(state_dir_, Pool("10.0.0.0/24")).ok());
}

TEST_F(NetworkAllocatorTest, ConcurrentAllocationsAreAllDistinctAndPersisted) {
  auto allocator = Open(Pool("10.1.0.0/23"));
  ASSERT_NE(allocator, nullptr);
  constexpr int kThreads = 8;
  constexpr int kPerThread = 30;
  std::vector<std::thread> threads;
  std::vector<std::vector<std::string>> errors(kThreads);
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        // Appended: GCC 12 -O3 warns falsely (-Wrestrict) on "t" + std::to_string(t).
        std::string id = "t";
        id.append(std::to_string(t)).append("-").append(std::to_string(i));
        Result<NetworkIdentity> identity = allocator->Allocate(id);
        if (!identity.ok()) errors[t].push_back(identity.status().ToString());
        // Every third lease is released again, so releases race with allocations too.
        if (i % 3 == 2) {
          Status released = allocator->Release(id);
          if (!released.ok()) errors[t].push_back(released.ToString());
        }
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  for (const auto& list : errors) EXPECT_TRUE(list.empty()) << list.front();
  std::map<std::string, NetworkIdentity> leases = allocator->Leases();
  EXPECT_EQ(leases.size(), size_t{kThreads * kPerThread * 2 / 3});
  ExpectAllDistinct(leases);
  allocator.reset();
  auto reopened = Open(Pool("10.1.0.0/23"));
  ASSERT_NE(reopened, nullptr);
  EXPECT_EQ(reopened->Leases().size(), leases.size());
}

TEST_F(NetworkAllocatorTest, UnknownFieldsSurviveRewrite) {
  ASSERT_TRUE(::mkdir(dir_->Sub("state").c_str(), 0700) == 0);
  ASSERT_TRUE(::mkdir(state_dir_.c_str(), 0700) == 0);
  ASSERT_TRUE(WriteFile(StatePath(), R"({
  "version": 1, "subnet": "10.0.0.0/24", "gateway": "10.0.0.1", "next_host": 3,
  "written_by": "a newer engine",
  "leases": {"old": {"ipv4": "10.0.0.2", "mac": "02:fe:0a:00:00:02", "tap_device": "fe0a000002",
                     "vsock_cid": 167772162, "owner": "pool-7"}}
})")
                  .ok());
  auto allocator = Open(Pool("10.0.0.0/24"));
  ASSERT_NE(allocator, nullptr);
  ASSERT_TRUE(allocator->Allocate("new").ok());
  allocator.reset();
  // The lease went to the journal; reopening folds it into network.json.
  ASSERT_NE(Open(Pool("10.0.0.0/24")), nullptr);
  Result<std::string> text = ReadFile(StatePath());
  ASSERT_TRUE(text.ok());
  nlohmann::json document = nlohmann::json::parse(*text);
  EXPECT_EQ(document["written_by"], "a newer engine");
  EXPECT_EQ(document["leases"]["old"]["owner"], "pool-7");
  EXPECT_EQ(document["leases"]["new"]["ipv4"], "10.0.0.3");
}

TEST_F(NetworkAllocatorTest, CorruptStateIsRefusedNamingFileAndField) {
  ASSERT_TRUE(::mkdir(dir_->Sub("state").c_str(), 0700) == 0);
  ASSERT_TRUE(::mkdir(state_dir_.c_str(), 0700) == 0);
  struct Case {
    const char* text;
    const char* field;
  };
  const Case cases[] = {
      {"not json", "not a JSON object"},
      {R"({"version": 9, "next_host": 1, "leases": {}})", "version"},
      {R"({"version": 1, "next_host": 1, "leases": []})", "leases"},
      {R"({"version": 1, "next_host": 1, "subnet": "10.0.0.0/24", "gateway": "10.0.0.1",
           "leases": {"a": {"ipv4": 5, "mac": "m", "tap_device": "t", "vsock_cid": 3}}})",
       "leases.a.ipv4"},
      {R"({"version": 1, "next_host": 1, "subnet": "10.0.0.0/24", "gateway": "10.0.0.1",
           "leases": {"a": {"ipv4": "10.0.0.2", "mac": "m1", "tap_device": "t1", "vsock_cid": 7},
                      "b": {"ipv4": "10.0.0.2", "mac": "m2", "tap_device": "t2", "vsock_cid": 8}}})",
       "leases.b.ipv4"},
      {R"({"version": 1, "next_host": 1, "subnet": "10.0.0.0/24", "gateway": "10.0.0.1",
           "leases": {"a": {"ipv4": "10.0.0.1", "mac": "m1", "tap_device": "t1", "vsock_cid": 7}}})",
       "leases.a.ipv4"},
  };
  for (const Case& c : cases) {
    ASSERT_TRUE(WriteFile(StatePath(), c.text).ok());
    Result<std::unique_ptr<NetworkAllocator>> allocator = NetworkAllocator::Open(state_dir_, Pool("10.0.0.0/24"));
    ASSERT_FALSE(allocator.ok()) << c.text;
    EXPECT_EQ(allocator.status().code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(allocator.status().message().find(StatePath()), std::string::npos) << allocator.status().ToString();
    EXPECT_NE(allocator.status().message().find(c.field), std::string::npos) << allocator.status().ToString();
  }
}

TEST_F(NetworkAllocatorTest, OtherSubnetIsRefusedWhileLeasesLive) {
  {
    auto allocator = Open(Pool("10.0.0.0/24"));
    ASSERT_NE(allocator, nullptr);
    ASSERT_TRUE(allocator->Allocate("vm").ok());
  }
  Result<std::unique_ptr<NetworkAllocator>> moved = NetworkAllocator::Open(state_dir_, Pool("10.9.0.0/24"));
  ASSERT_FALSE(moved.ok());
  EXPECT_NE(moved.status().message().find("subnet"), std::string::npos) << moved.status().ToString();
  {
    auto allocator = Open(Pool("10.0.0.0/24"));
    ASSERT_NE(allocator, nullptr);
    ASSERT_TRUE(allocator->Release("vm").ok());
  }
  auto renumbered = Open(Pool("10.9.0.0/24"));
  ASSERT_NE(renumbered, nullptr);
  Result<NetworkIdentity> identity = renumbered->Allocate("vm");
  ASSERT_TRUE(identity.ok()) << identity.status().ToString();
  EXPECT_EQ(identity->ipv4.rfind("10.9.0.", 0), 0u) << identity->ipv4;
}

TEST_F(NetworkAllocatorTest, FailedWriteLeasesNothing) {
  auto allocator = Open(Pool("10.0.0.0/24"));
  ASSERT_NE(allocator, nullptr);
  ASSERT_TRUE(allocator->Allocate("a").ok());
  {
    JournalCannotGrow full(JournalPath());
    Result<NetworkIdentity> b = allocator->Allocate("b");
    EXPECT_FALSE(b.ok());
    EXPECT_FALSE(allocator->Find("b").has_value());
    EXPECT_FALSE(allocator->Release("a").ok());
    EXPECT_TRUE(allocator->Find("a").has_value()) << "a release that did not persist is not applied";
  }
  allocator.reset();
  // Nor did either leave a line behind that a restart would apply.
  auto reopened = Open(Pool("10.0.0.0/24"));
  ASSERT_NE(reopened, nullptr);
  EXPECT_FALSE(reopened->Find("b").has_value());
  EXPECT_TRUE(reopened->Find("a").has_value());
}

TEST_F(NetworkAllocatorTest, FailedWritesAreUndoneAndLaterCallsSucceed) {
  auto allocator = Open(Pool("10.0.0.0/29"));  // leasable: .2 .3 .4 .5 .6 (.1 is the gateway)
  ASSERT_NE(allocator, nullptr);
  Result<NetworkIdentity> a = allocator->Allocate("a");
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  ASSERT_EQ(a->ipv4, "10.0.0.2");
  {
    JournalCannotGrow full(JournalPath());
    ASSERT_FALSE(allocator->Allocate("b").ok());
    ASSERT_FALSE(allocator->Release("a").ok());
  }

  // The failed lease took neither its address nor the cursor: b gets what it would have got.
  Result<NetworkIdentity> b = allocator->Allocate("b");
  ASSERT_TRUE(b.ok()) << b.status().ToString();
  EXPECT_EQ(b->ipv4, "10.0.0.3");
  // The failed release left a's lease and its resources taken: the subnet fills up around it.
  for (const char* id : {"c", "d", "e"}) ASSERT_TRUE(allocator->Allocate(id).ok()) << id;
  Result<NetworkIdentity> full = allocator->Allocate("f");
  ASSERT_FALSE(full.ok()) << "got " << full->ipv4;
  EXPECT_EQ(full.status().code(), ErrorCode::kInsufficientResources);
  ASSERT_TRUE(allocator->Find("a").has_value());
  EXPECT_EQ(allocator->Find("a")->ipv4, "10.0.0.2");
  ExpectAllDistinct(allocator->Leases());

  ASSERT_TRUE(allocator->Release("a").ok());
  const std::map<std::string, NetworkIdentity> before = allocator->Leases();
  allocator.reset();
  auto reopened = Open(Pool("10.0.0.0/29"));
  ASSERT_NE(reopened, nullptr);
  std::map<std::string, NetworkIdentity> after = reopened->Leases();
  ASSERT_EQ(after.size(), 4u);
  for (const auto& [id, identity] : before) EXPECT_EQ(after[id].ipv4, identity.ipv4) << id;
}

TEST_F(NetworkAllocatorTest, ALeaseAndAReleaseAreOneJournalLineEachAndLeaveNetworkJsonAlone) {
  auto allocator = Open(Pool("10.0.0.0/24"));
  ASSERT_NE(allocator, nullptr);
  Result<std::string> file_before = ReadFile(StatePath());
  ASSERT_TRUE(file_before.ok());
  Result<NetworkIdentity> a = allocator->Allocate("a");
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  ASSERT_TRUE(allocator->Release("a").ok());
  Result<std::string> file_after = ReadFile(StatePath());
  ASSERT_TRUE(file_after.ok());
  EXPECT_EQ(*file_after, *file_before) << "no O(leases) rewrite per change";
  Result<std::string> journal = ReadFile(JournalPath());
  ASSERT_TRUE(journal.ok());
  std::vector<nlohmann::json> lines;
  for (size_t start = 0, end; (end = journal->find('\n', start)) != std::string::npos; start = end + 1) {
    lines.push_back(nlohmann::json::parse(journal->substr(start, end - start)));
  }
  ASSERT_EQ(lines.size(), 3u) << *journal;
  EXPECT_TRUE(lines[0].contains("journal")) << *journal;
  EXPECT_EQ(lines[1]["lease"], "a");
  EXPECT_EQ(lines[1]["ipv4"], a->ipv4);
  EXPECT_EQ(lines[2]["release"], "a");
}

TEST_F(NetworkAllocatorTest, InsideADeferredSyncScopeALeaseIsMadeDurableByTheScopesSync) {
  auto allocator = Open(Pool("10.0.0.0/24"));
  ASSERT_NE(allocator, nullptr);
  int syncs = 0;
  {
    DeferredSync scope([&](int) {
      ++syncs;
      return 0;
    });
    ASSERT_TRUE(allocator->Allocate("a").ok());
    EXPECT_EQ(syncs, 0);
    ASSERT_TRUE(scope.Sync().ok());
  }
  EXPECT_EQ(syncs, 1) << "the journal's filesystem was noted in the scope";
}

TEST_F(NetworkAllocatorTest, ATornJournalTailIsCutAndTheLinesBeforeItCount) {
  {
    auto allocator = Open(Pool("10.0.0.0/24"));
    ASSERT_NE(allocator, nullptr);
    ASSERT_TRUE(allocator->Allocate("a").ok());
  }
  Result<std::string> journal = ReadFile(JournalPath());
  ASSERT_TRUE(journal.ok());
  // A crash in the middle of the next append, and zeros where the page cache never reached the disk.
  ASSERT_TRUE(WriteFile(JournalPath(), *journal + R"({"lease":"b","ipv4":"10.0.)" + std::string(40, '\0')).ok());
  auto reopened = Open(Pool("10.0.0.0/24"));
  ASSERT_NE(reopened, nullptr);
  EXPECT_TRUE(reopened->Find("a").has_value());
  EXPECT_FALSE(reopened->Find("b").has_value());
  Result<NetworkIdentity> b = reopened->Allocate("b");
  ASSERT_TRUE(b.ok()) << b.status().ToString();
  reopened.reset();
  auto again = Open(Pool("10.0.0.0/24"));
  ASSERT_NE(again, nullptr);
  EXPECT_EQ(again->Leases().size(), 2u);
}

TEST_F(NetworkAllocatorTest, AJournalOlderThanNetworkJsonIsNotAppliedTwice) {
  // A compaction a crash cut short: network.json already holds generation 5, which has a leased
  // 10.0.0.2 released and re-leased to b, and the generation-4 journal it folded in is still there.
  ASSERT_TRUE(::mkdir(dir_->Sub("state").c_str(), 0700) == 0);
  ASSERT_TRUE(::mkdir(state_dir_.c_str(), 0700) == 0);
  ASSERT_TRUE(WriteFile(StatePath(), R"({"version": 1, "subnet": "10.0.0.0/24", "gateway": "10.0.0.1",
  "next_host": 3, "journal": 5,
  "leases": {"b": {"ipv4": "10.0.0.2", "mac": "02:fe:0a:00:00:02", "tap_device": "fe0a000002",
                   "vsock_cid": 167772162}}})")
                  .ok());
  ASSERT_TRUE(WriteFile(JournalPath(), R"({"journal":4}
{"lease":"a","ipv4":"10.0.0.2","mac":"02:fe:0a:00:00:02","tap_device":"fe0a000002","vsock_cid":167772162,"next_host":3}
)")
                  .ok());
  auto allocator = Open(Pool("10.0.0.0/24"));
  ASSERT_NE(allocator, nullptr);
  EXPECT_FALSE(allocator->Find("a").has_value());
  ASSERT_TRUE(allocator->Find("b").has_value());
  EXPECT_EQ(allocator->Find("b")->ipv4, "10.0.0.2");
}

TEST_F(NetworkAllocatorTest, TheJournalIsFoldedIntoNetworkJsonOnceItOutgrowsIt) {
  auto allocator = Open(Pool("10.0.0.0/16"));
  ASSERT_NE(allocator, nullptr);
  // In a scope that is never synced: appends without an fdatasync each, as in a fork.
  DeferredSync scope([](int) { return 0; });
  for (int i = 0; i < 2100; ++i) {
    ASSERT_TRUE(allocator->Allocate("vm-" + std::to_string(i)).ok()) << i;
    ASSERT_TRUE(allocator->Release("vm-" + std::to_string(i)).ok()) << i;
  }
  ASSERT_TRUE(allocator->Allocate("kept").ok());
  Result<std::string> journal = ReadFile(JournalPath());
  ASSERT_TRUE(journal.ok());
  EXPECT_LT(std::count(journal->begin(), journal->end(), '\n'), 4096) << "compacted once past 4,096 records";
  Result<std::string> file = ReadFile(StatePath());
  ASSERT_TRUE(file.ok());
  EXPECT_GT(nlohmann::json::parse(*file)["journal"].get<int>(), 1);
  allocator.reset();
  auto reopened = Open(Pool("10.0.0.0/16"));
  ASSERT_NE(reopened, nullptr);
  EXPECT_EQ(reopened->Leases().size(), 1u);
  EXPECT_TRUE(reopened->Find("kept").has_value());
}

TEST_F(NetworkAllocatorTest, InvalidConfigsAreRefused) {
  auto refused = [&](NetworkPoolConfig config, std::string_view mention) {
    Result<std::unique_ptr<NetworkAllocator>> allocator = NetworkAllocator::Open(state_dir_, config);
    ASSERT_FALSE(allocator.ok()) << config.subnet;
    EXPECT_EQ(allocator.status().code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(allocator.status().message().find(mention), std::string::npos) << allocator.status().ToString();
  };
  refused(Pool("10.0.0.0"), "CIDR");
  refused(Pool("10.0.0.1/24"), "host bits");
  refused(Pool("10.0.0.0/31"), "prefix length");
  refused(Pool("10.0.0.0/33"), "prefix length");
  refused(Pool("0.0.0.0/24"), "0.0.0.0/8");
  NetworkPoolConfig gateway = Pool("10.0.0.0/24");
  gateway.gateway = "10.0.1.1";
  refused(gateway, "gateway");
  gateway.gateway = "10.0.0.255";
  refused(gateway, "gateway");
  NetworkPoolConfig multicast = Pool("10.0.0.0/24");
  multicast.mac_prefix = "03:00";
  refused(multicast, "multicast");
  NetworkPoolConfig universal = Pool("10.0.0.0/24");
  universal.mac_prefix = "00:16";
  refused(universal, "locally administered");
  NetworkPoolConfig long_tap = Pool("10.0.0.0/24");
  long_tap.tap_prefix = "forkeng";
  EXPECT_TRUE(NetworkAllocator::Open(state_dir_, long_tap).ok()) << "7 + 8 = 15 bytes fit";
  long_tap.tap_prefix = "forkengi";
  refused(long_tap, "15");
  NetworkPoolConfig bad_tap = Pool("10.0.0.0/24");
  bad_tap.tap_prefix = "a/b";
  refused(bad_tap, "tap_prefix");
}

}  // namespace
}  // namespace fe::engine::network
