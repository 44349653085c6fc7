// PoolManager on real reflink storage (XFS) with the Cloud Hypervisor real-format template, an
// injected load source and Tick() driven by hand: filling, the busy throttle, acquire (hit, miss,
// no_wait, name taken), 200 concurrent acquires, the budget at admission and in the loop, template
// checks, restarts, and deleting a pool.
#include "engine/pools/pool.h"

#include <atomic>
#include <set>
#include <thread>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "engine/data_root.h"
#include "engine/instance_store.h"
#include "tests/engine/engine_fixture.h"
#include "tests/engine/pools/pool_fixture.h"

namespace fe::engine::pools {
namespace {

using namespace pools::test;
using engine::test::EngineFixture;
using fe::test::ScratchFs;

TEST_F(PoolTest, TicksFillThePoolToItsMaximumWithLabelledForksOfTheTemplate) {
  Result<PoolStatus> created = pools_->Create(Spec("web", 1, 3));
  FE_ASSERT_OK(created);
  EXPECT_EQ(created->spec.template_id, template_.id);  // stored as the id
  EXPECT_EQ(created->ready, 0);
  FillTo("web", 3);
  std::vector<Instance> members = MembersOf("web");
  ASSERT_EQ(members.size(), 3u);
  for (const Instance& member : members) {
    EXPECT_EQ(member.parent_id, template_.id);
    EXPECT_EQ(member.state, InstanceState::kStandby);
    EXPECT_EQ(member.name.rfind("web-", 0), 0u) << member.name;
    EXPECT_EQ(member.name.size(), 4u + 8u) << member.name;
  }
  PoolStatus status = StatusOf("web");
  EXPECT_EQ(status.counters.refills, 3u);
  EXPECT_EQ(refill_callbacks_.load(), 3);
  EXPECT_GT(status.counters.refill_seconds_total, 0.0);
  // Full: another tick starts nothing.
  FE_ASSERT_OK(pools_->Tick());
  pools_->WaitIdle();
  EXPECT_EQ(MembersOf("web").size(), 3u);
  EXPECT_EQ(pools_->cpu_used_vcpus(), 3);
}

TEST_F(PoolTest, RestoredMembersMapTheTemplatesMemoryByDefaultWhereItCanBeShared) {
  PoolSpec spec = Spec("plain", 0, 1, InstanceState::kRunning);
  // The test plugin, like cloud-hypervisor, cannot share memory: members have their own.
  Result<PoolStatus> plain = pools_->Create(spec);
  FE_ASSERT_OK(plain);
  EXPECT_EQ(plain->memory, MemoryMode::kPrivate);
  spec.name = "wants-shared";
  spec.memory = MemoryMode::kShared;
  EXPECT_EQ(pools_->Create(spec).status().code(), ErrorCode::kFailedPrecondition);

  // Told where a snapshot's memory file is, it can: then that is the default.
  hypervisor::PluginCapabilities capabilities = fixture_.plugin().Capabilities();
  capabilities.shared_memory = true;
  fixture_.plugin().capabilities = capabilities;
  fixture_.plugin().snapshot_memory_file = "snapshot/memory-ranges";
  EXPECT_EQ(StatusOf("plain").memory, MemoryMode::kShared);
  spec.name = "warm";
  spec.memory = std::nullopt;
  FE_ASSERT_OK(pools_->Create(spec));
  FillTo("warm", 1);
  std::vector<Instance> members = MembersOf("warm");
  ASSERT_EQ(members.size(), 1u);
  ASSERT_TRUE(members[0].shared_memory.has_value());
  EXPECT_EQ(members[0].shared_memory->instance_id, template_.id);
  // An on-demand member too; and a pool that asks for private members gets them.
  Result<AcquireOutcome> hit = pools_->Acquire("warm", Named("a"));
  FE_ASSERT_OK(hit);
  Result<AcquireOutcome> miss = pools_->Acquire("warm", Named("b"));
  FE_ASSERT_OK(miss);
  EXPECT_FALSE(miss->hit);
  EXPECT_TRUE(miss->instance.shared_memory.has_value());
  spec.name = "cold";
  spec.memory = MemoryMode::kPrivate;
  FE_ASSERT_OK(pools_->Create(spec));
  Result<AcquireOutcome> cold = pools_->Acquire("cold", Named("c"));
  FE_ASSERT_OK(cold);
  EXPECT_FALSE(cold->instance.shared_memory.has_value());
}

TEST_F(PoolTest, RunningMembersCountWhatTheyHoldAgainstTheMemoryBudget) {
  // Every running instance holds 300 MiB of its own; the budget is 1000 MiB.
  constexpr uint64_t kMiB = 1 << 20;
  memory_budget_ = 1000 * kMiB;
  measure_memory_ = [](const Instance&) {
    vm::ProcessMemory memory;
    memory.private_bytes = 300 * kMiB;
    memory.shared_bytes = 20 * kMiB;
    return std::optional<vm::ProcessMemory>(memory);
  };
  FE_ASSERT_OK(Restart());
  FE_ASSERT_OK(pools_->Create(Spec("warm", 0, 5, InstanceState::kRunning)));
  for (int round = 0; round < 6; ++round) {
    FE_ASSERT_OK(pools_->Tick());
    pools_->WaitIdle();
  }
  // The first two were made before anything was measured (max_parallel_refills); then each member
  // is known to hold 300 MiB, so one more fits and a fourth would not.
  PoolStatus status = StatusOf("warm");
  EXPECT_EQ(status.ready, 3);
  EXPECT_EQ(status.memory_per_member_bytes, 300 * kMiB);
  EXPECT_EQ(status.memory_used_bytes, 900 * kMiB);
  EXPECT_EQ(status.memory_shared_bytes, 60 * kMiB) << "shared, not counted against the budget";
  EXPECT_EQ(pools_->memory_used_bytes(), 900 * kMiB);
  EXPECT_EQ(pools_->memory_budget_bytes(), 1000 * kMiB);

  // An instance outside the pools takes 300 MiB more: the pool gives a member back.
  ForkRequest other;
  other.name = "other";
  other.target_state = InstanceState::kRunning;
  FE_ASSERT_OK(engine().Fork("tmpl", other));
  FE_ASSERT_OK(pools_->Tick());
  pools_->WaitIdle();
  EXPECT_EQ(StatusOf("warm").ready, 2);
}

TEST_F(PoolTest, BusyHostTickStartsNoRefillUntilTheLoadDrops) {
  FE_ASSERT_OK(pools_->Create(Spec("web", 2, 3)));
  busy_->store(0.95);
  for (int i = 0; i < 3; ++i) {
    FE_ASSERT_OK(pools_->Tick());
    pools_->WaitIdle();
  }
  PoolStatus status = StatusOf("web");
  EXPECT_TRUE(status.throttled);
  EXPECT_EQ(status.ready, 0);
  EXPECT_EQ(status.counters.refills, 0u);
  EXPECT_EQ(engine().List().size(), 1u);  // the template only
  busy_->store(0.2);
  FE_ASSERT_OK(pools_->Tick());
  pools_->WaitIdle();
  status = StatusOf("web");
  EXPECT_FALSE(status.throttled);
  EXPECT_EQ(status.ready, 2);
}

TEST_F(PoolTest, AcquireHitRenamesTheMemberClearsItsLabelAndTakesItOutOfThePool) {
  FE_ASSERT_OK(pools_->Create(Spec("web", 0, 2)));
  FillTo("web", 2);
  Result<AcquireOutcome> acquired = pools_->Acquire("web", Named("alice"));
  FE_ASSERT_OK(acquired);
  EXPECT_TRUE(acquired->hit);
  EXPECT_GE(acquired->latency_us, 0);
  const Instance& alice = acquired->instance;
  EXPECT_EQ(alice.name, "alice");
  EXPECT_TRUE(alice.pool.empty());
  EXPECT_EQ(alice.parent_id, template_.id);
  Result<Instance> by_name = engine().Get("alice");
  FE_ASSERT_OK(by_name);
  EXPECT_EQ(by_name->id, alice.id);
  PoolStatus status = StatusOf("web");
  EXPECT_EQ(status.ready, 1);
  EXPECT_EQ(status.counters.hits, 1u);
  EXPECT_EQ(status.counters.misses, 0u);
  ASSERT_EQ(MembersOf("web").size(), 1u);
  EXPECT_NE(MembersOf("web")[0].id, alice.id);
  // Without a name the member keeps its generated one.
  Result<AcquireOutcome> unnamed = pools_->Acquire("web", AcquireRequest{});
  FE_ASSERT_OK(unnamed);
  EXPECT_TRUE(unnamed->hit);
  EXPECT_EQ(unnamed->instance.name.rfind("web-", 0), 0u);
  EXPECT_TRUE(unnamed->instance.pool.empty());
  // Durable (the journal, then the metadata: tests/engine/pool_release_test.cc): after a restart both
  // are normal instances, and no member is left (nothing refilled: the test drives Tick by hand).
  FE_ASSERT_OK(Restart());
  Result<Instance> after = engine().Get("alice");
  FE_ASSERT_OK(after);
  EXPECT_TRUE(after->pool.empty());
  Result<Instance> unnamed_after = engine().Get(unnamed->instance.id);
  FE_ASSERT_OK(unnamed_after);
  EXPECT_TRUE(unnamed_after->pool.empty());
  EXPECT_TRUE(MembersOf("web").empty());
}

TEST_F(PoolTest, AcquireSetsTheLifecyclePolicyOnAHitAndOnAMissAndItSurvivesARestart) {
  FE_ASSERT_OK(pools_->Create(Spec("web", 0, 1)));
  FillTo("web", 1);
  AcquireRequest hour = Named("hit");
  hour.ttl_s = 3600;
  hour.idle_standby_s = 120;
  Result<AcquireOutcome> hit = pools_->Acquire("web", hour);
  FE_ASSERT_OK(hit);
  ASSERT_TRUE(hit->hit);
  EXPECT_FALSE(hit->instance.lifecycle.expires_at.empty());
  EXPECT_EQ(hit->instance.lifecycle.idle_standby_s, 120);
  hour.name = "miss";  // the pool is empty now: forked on demand
  Result<AcquireOutcome> miss = pools_->Acquire("web", hour);
  FE_ASSERT_OK(miss);
  ASSERT_FALSE(miss->hit);
  EXPECT_FALSE(miss->instance.lifecycle.expires_at.empty());
  EXPECT_EQ(miss->instance.lifecycle.idle_standby_s, 120);
  FE_ASSERT_OK(Restart());
  for (const Instance& acquired : {hit->instance, miss->instance}) {
    Result<Instance> after = engine().Get(acquired.id);
    FE_ASSERT_OK(after);
    EXPECT_EQ(after->lifecycle, acquired.lifecycle) << acquired.name;
  }
}

TEST_F(PoolTest, AcquireWithABadPolicyIsRefusedNamingTheFieldAndTheMemberStaysReady) {
  FE_ASSERT_OK(pools_->Create(Spec("web", 0, 1)));
  FillTo("web", 1);
  AcquireRequest forever = Named("alice");
  forever.ttl_s = 0;
  Result<AcquireOutcome> acquired = pools_->Acquire("web", forever);
  ASSERT_FALSE(acquired.ok());
  EXPECT_EQ(acquired.status().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(acquired.status().message().find("ttl_s"), std::string::npos) << acquired.status().message();
  EXPECT_EQ(StatusOf("web").ready, 1);
  EXPECT_EQ(engine().Get("alice").status().code(), ErrorCode::kNotFound);
}

TEST_F(PoolTest, AcquireWithATakenNameFailsAndTheMemberStaysReady) {
  FE_ASSERT_OK(pools_->Create(Spec("web", 0, 1)));
  FillTo("web", 1);
  Result<AcquireOutcome> acquired = pools_->Acquire("web", Named("tmpl"));
  ASSERT_FALSE(acquired.ok());
  EXPECT_EQ(acquired.status().code(), ErrorCode::kAlreadyExists);
  EXPECT_EQ(StatusOf("web").ready, 1);
  EXPECT_EQ(MembersOf("web").size(), 1u);
}

TEST_F(PoolTest, EmptyPoolWithNoWaitIsUnavailableAndMakesNothing) {
  FE_ASSERT_OK(pools_->Create(Spec("web", 0, 1)));
  Result<AcquireOutcome> acquired = pools_->Acquire("web", Named("alice", /*no_wait=*/true));
  ASSERT_FALSE(acquired.ok());
  EXPECT_EQ(acquired.status().code(), ErrorCode::kUnavailable);
  EXPECT_EQ(acquired.status().message(), "pool 'web' has no ready member");
  EXPECT_EQ(StatusOf("web").counters.misses, 1u);
  EXPECT_EQ(engine().List().size(), 1u);
}

TEST_F(PoolTest, EmptyPoolMissForksOnDemandFromTheTemplate) {
  FE_ASSERT_OK(pools_->Create(Spec("web", 0, 1)));
  Result<AcquireOutcome> acquired = pools_->Acquire("web", Named("bob"));
  FE_ASSERT_OK(acquired);
  EXPECT_FALSE(acquired->hit);
  EXPECT_EQ(acquired->instance.name, "bob");
  EXPECT_TRUE(acquired->instance.pool.empty());
  EXPECT_EQ(acquired->instance.parent_id, template_.id);
  EXPECT_EQ(acquired->instance.state, InstanceState::kStandby);
  PoolStatus status = StatusOf("web");
  EXPECT_EQ(status.counters.misses, 1u);
  EXPECT_EQ(status.counters.hits, 0u);
}

TEST_F(PoolTest, UnknownPoolIsNotFound) {
  EXPECT_EQ(pools_->Acquire("nope", AcquireRequest{}).status().code(), ErrorCode::kNotFound);
  EXPECT_EQ(pools_->Get("nope").status().code(), ErrorCode::kNotFound);
  EXPECT_EQ(pools_->Delete("nope").code(), ErrorCode::kNotFound);
}

TEST_F(PoolTest, TwoHundredConcurrentAcquiresOfAPoolOfTwentyGetDistinctInstancesAndLeakNothing) {
  FE_ASSERT_OK(pools_->Create(Spec("web", 0, 20)));
  FillTo("web", 20);
  constexpr int kAcquirers = 200;
  std::vector<std::optional<Result<AcquireOutcome>>> results(kAcquirers);
  std::vector<std::thread> threads;
  for (int i = 0; i < kAcquirers; ++i) {
    threads.emplace_back([&, i] { results[i].emplace(pools_->Acquire("web", Named("c-" + std::to_string(i)))); });
  }
  for (std::thread& thread : threads) thread.join();
  std::set<std::string> ids, names;
  int hits = 0;
  for (int i = 0; i < kAcquirers; ++i) {
    ASSERT_TRUE(results[i]->ok()) << results[i]->status().ToString();
    const AcquireOutcome& outcome = **results[i];
    EXPECT_EQ(outcome.instance.name, "c-" + std::to_string(i));
    EXPECT_TRUE(outcome.instance.pool.empty());
    ids.insert(outcome.instance.id);
    names.insert(outcome.instance.name);
    hits += outcome.hit ? 1 : 0;
  }
  EXPECT_EQ(ids.size(), 200u);
  EXPECT_EQ(names.size(), 200u);
  EXPECT_EQ(hits, 20);
  PoolStatus status = StatusOf("web");
  EXPECT_EQ(status.counters.hits, 20u);
  EXPECT_EQ(status.counters.misses, 180u);
  EXPECT_EQ(status.ready, 0);
  EXPECT_EQ(engine().List().size(), 201u);
  // The pool refills in the background; every instance is then acquired, the template or a member.
  FE_ASSERT_OK(pools_->Tick());
  pools_->WaitIdle();
  status = StatusOf("web");
  EXPECT_EQ(status.ready, 2);  // max_parallel_refills
  std::vector<Instance> listed = engine().List();
  EXPECT_EQ(listed.size(), 201u + static_cast<size_t>(status.ready));
  // No leak: every volume and lease belongs to a listed instance, and the other way round.
  std::set<std::string> listed_ids;
  for (const Instance& instance : listed) listed_ids.insert(instance.id);
  for (const std::string& id : ids) EXPECT_EQ(listed_ids.count(id), 1u) << id;
  Result<std::vector<std::string>> volumes = fe::test::ListDir(engine().backend().Root());
  FE_ASSERT_OK(volumes);
  std::set<std::string> volume_names;
  for (const std::string& name : *volumes) {
    if (name.front() != '.') volume_names.insert(name);
  }
  EXPECT_EQ(volume_names, listed_ids);
  pools_.reset();
  fixture_.Close();
  {
    Result<std::unique_ptr<network::NetworkAllocator>> allocator =
        network::NetworkAllocator::Open(fixture_.NetworkDir(), DefaultNetworkPool());
    FE_ASSERT_OK(allocator);
    std::set<std::string> holders;
    for (const auto& [holder, identity] : (*allocator)->Leases()) holders.insert(holder);
    EXPECT_EQ(holders, listed_ids);
  }
  FE_ASSERT_OK(fixture_.Open());
}

TEST_F(PoolTest, PoolWhoseMinimumExceedsTheBudgetIsRefusedNamingTheBudget) {
  pools_.reset();
  budget_ = 4;
  FE_ASSERT_OK(OpenPools());
  FE_ASSERT_OK(pools_->Create(Spec("a", 3, 4)));
  Result<PoolStatus> refused = pools_->Create(Spec("b", 2, 2));
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), ErrorCode::kFailedPrecondition);
  const std::string& message = refused.status().message();
  EXPECT_NE(message.find("needs 2 vCPUs"), std::string::npos) << message;
  EXPECT_NE(message.find("the CPU budget is 4 vCPUs and 3 are committed"), std::string::npos) << message;
  FE_ASSERT_OK(pools_->Create(Spec("c", 1, 2)));  // what is left fits
  EXPECT_EQ(pools_->cpu_budget_vcpus(), 4);
}

TEST_F(PoolTest, RunningInstancesNeedingTheBudgetShrinkThePoolTowardItsMinimum) {
  pools_.reset();
  budget_ = 3;
  FE_ASSERT_OK(OpenPools());
  FE_ASSERT_OK(pools_->Create(Spec("web", 1, 3)));
  FillTo("web", 3);
  CreateRequest request;
  request.name = "big";
  request.hypervisor = "cloud-hypervisor";
  request.import_dir = fixture_.template_dir();
  request.vcpus = 2;
  FE_ASSERT_OK(engine().Create(request));
  FE_ASSERT_OK(engine().Restore("big"));  // Running: 2 + 3 members = 5 vCPUs of 3
  FE_ASSERT_OK(pools_->Tick());
  pools_->WaitIdle();
  EXPECT_EQ(StatusOf("web").ready, 1);  // never below the minimum, though still over budget
  EXPECT_EQ(MembersOf("web").size(), 1u);
  EXPECT_EQ(pools_->cpu_used_vcpus(), 3);
  FE_ASSERT_OK(engine().Stop("big"));
}

TEST_F(PoolTest, TemplateMustBeStoppedOrStandbyAndStandbyMembersNeedAStandbyTemplate) {
  FE_ASSERT_OK(engine().Restore("tmpl"));
  Result<PoolStatus> running = pools_->Create(Spec("web", 0, 1));
  ASSERT_FALSE(running.ok());
  EXPECT_EQ(running.status().code(), ErrorCode::kFailedPrecondition);
  EXPECT_NE(running.status().message().find("is Running"), std::string::npos) << running.status().message();
  FE_ASSERT_OK(engine().Stop("tmpl"));  // now Stopped
  Result<PoolStatus> standby_members = pools_->Create(Spec("web", 0, 1, InstanceState::kStandby));
  EXPECT_EQ(standby_members.status().code(), ErrorCode::kFailedPrecondition);
  FE_ASSERT_OK(pools_->Create(Spec("web", 0, 1, InstanceState::kRunning)));
}

TEST_F(PoolTest, CreateRefusesBadSpecsDuplicatesAndUnknownTemplates) {
  EXPECT_EQ(pools_->Create(Spec("Bad_Name", 0, 1)).status().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(pools_->Create(Spec("web", 2, 1)).status().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(pools_->Create(Spec("web", 0, 0)).status().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(pools_->Create(Spec("web", 0, 1, InstanceState::kStopped)).status().code(), ErrorCode::kInvalidArgument);
  PoolSpec unknown = Spec("web", 0, 1);
  unknown.template_id = "ghost";
  EXPECT_EQ(pools_->Create(unknown).status().code(), ErrorCode::kNotFound);
  FE_ASSERT_OK(pools_->Create(Spec("web", 0, 1)));
  EXPECT_EQ(pools_->Create(Spec("web", 0, 1)).status().code(), ErrorCode::kAlreadyExists);
  EXPECT_EQ(pools_->List().size(), 1u);
}

TEST_F(PoolTest, RunningMembersAreMadeRunningAndStoppedWhenThePoolIsDeleted) {
  FE_ASSERT_OK(pools_->Create(Spec("hot", 0, 1, InstanceState::kRunning)));
  FillTo("hot", 1);
  std::vector<Instance> members = MembersOf("hot");
  ASSERT_EQ(members.size(), 1u);
  EXPECT_EQ(members[0].state, InstanceState::kRunning);
  EXPECT_EQ(pools_->cpu_used_vcpus(), 1);
  FE_ASSERT_OK(pools_->Delete("hot"));
  EXPECT_EQ(engine().List().size(), 1u);
}

TEST_F(PoolTest, PoolsAndReadyMembersSurviveARestart) {
  FE_ASSERT_OK(pools_->Create(Spec("web", 1, 2)));
  FillTo("web", 2);
  FE_ASSERT_OK(pools_->Acquire("web", Named("alice")));
  FE_ASSERT_OK(Restart());
  PoolStatus status = StatusOf("web");
  EXPECT_EQ(status.spec.min_size, 1);
  EXPECT_EQ(status.spec.max_size, 2);
  EXPECT_EQ(status.spec.template_id, template_.id);
  EXPECT_EQ(status.ready, 1);
  FE_ASSERT_OK(engine().Get("alice"));
  Result<AcquireOutcome> acquired = pools_->Acquire("web", Named("bob"));
  FE_ASSERT_OK(acquired);
  EXPECT_TRUE(acquired->hit);
}

TEST_F(PoolTest, RestartRemovesAHalfMadeMemberAndMembersOfAPoolThatIsGone) {
  FE_ASSERT_OK(pools_->Create(Spec("web", 0, 2)));
  FE_ASSERT_OK(pools_->Create(Spec("gone", 0, 1)));
  FillTo("web", 2);
  FillTo("gone", 1);
  // A crash mid-fork leaves an intent (state Creating); a crash in Delete after the spec was removed
  // leaves members of a pool that no longer exists.
  Instance half_made = MembersOf("web")[0];
  half_made.state = InstanceState::kCreating;
  Result<InstanceStore> store = InstanceStore::Open(DataRoot(fixture_.DataRoot()).Instances());
  FE_ASSERT_OK(store);
  FE_ASSERT_OK(store->Write(half_made));
  // Saved now, so the orderly close in Restart() writes nothing: as after a kill -9.
  FE_ASSERT_OK(pools_->SaveCounters());
  ASSERT_EQ(::unlink((fixture_.DataRoot() + "/pools/gone.json").c_str()), 0);
  FE_ASSERT_OK(Restart());
  EXPECT_EQ(StatusOf("web").ready, 1);
  EXPECT_EQ(pools_->Get("gone").status().code(), ErrorCode::kNotFound);
  EXPECT_EQ(MembersOf("gone").size(), 0u);
  EXPECT_FALSE(engine().Get(half_made.id).ok());
  EXPECT_EQ(engine().List().size(), 2u);  // the template and one member
}

TEST_F(PoolTest, CountersSurviveARestart) {
  FE_ASSERT_OK(pools_->Create(Spec("web", 0, 2)));
  FillTo("web", 2);
  FE_ASSERT_OK(pools_->Acquire("web", Named("alice")));
  FE_ASSERT_OK(pools_->Acquire("web", Named("bob")));
  FE_ASSERT_OK(pools_->Acquire("web", Named("carol")));  // empty: a miss
  const PoolCounters before = StatusOf("web").counters;
  ASSERT_EQ(before.hits, 2u);
  ASSERT_EQ(before.misses, 1u);
  ASSERT_EQ(before.refills, 2u);
  FE_ASSERT_OK(Restart());
  const PoolCounters after = StatusOf("web").counters;
  EXPECT_EQ(after.hits, before.hits);
  EXPECT_EQ(after.misses, before.misses);
  EXPECT_EQ(after.refills, before.refills);
  EXPECT_EQ(after.refill_failures, before.refill_failures);
  EXPECT_NEAR(after.refill_seconds_total, before.refill_seconds_total, 1e-6);
}

TEST_F(PoolTest, SaveCountersWritesThemToThePoolsFileForAKillMinus9ToFind) {
  FE_ASSERT_OK(pools_->Create(Spec("web", 0, 1)));
  FillTo("web", 1);
  FE_ASSERT_OK(pools_->Acquire("web", Named("alice")));
  FE_ASSERT_OK(pools_->SaveCounters());
  // What the file holds now is what a crash right after this tick leaves for the restart.
  Result<std::string> saved = fe::test::ReadFile(fixture_.DataRoot() + "/pools/web.json");
  FE_ASSERT_OK(saved);
  nlohmann::json counters = nlohmann::json::parse(*saved)["counters"];
  EXPECT_EQ(counters["hits"], 1) << *saved;
  EXPECT_EQ(counters["misses"], 0) << *saved;
  EXPECT_EQ(counters["refills"], 1) << *saved;
}

TEST_F(PoolTest, ATemplateIsNotDeletedWhilePoolsUseItAndTheErrorNamesThem) {
  FE_ASSERT_OK(pools_->Create(Spec("web", 0, 1)));
  FE_ASSERT_OK(pools_->Create(Spec("api", 0, 1)));
  Status refused = engine().Delete("tmpl");
  EXPECT_EQ(refused.code(), ErrorCode::kFailedPrecondition);
  EXPECT_NE(refused.message().find("template of pool(s) 'api', 'web'"), std::string::npos) << refused.message();
  FE_ASSERT_OK(engine().Get("tmpl"));
  FE_ASSERT_OK(pools_->Delete("web"));
  FE_ASSERT_OK(pools_->Delete("api"));
  FE_EXPECT_OK(engine().Delete("tmpl"));
}

TEST_F(PoolTest, DeletingAPoolRemovesItsReadyMembersOnly) {
  FE_ASSERT_OK(pools_->Create(Spec("web", 0, 3)));
  FE_ASSERT_OK(pools_->Create(Spec("other", 0, 1)));
  FillTo("web", 3);
  FillTo("other", 1);
  FE_ASSERT_OK(pools_->Acquire("web", Named("kept")));
  FE_ASSERT_OK(pools_->Delete("web"));
  EXPECT_EQ(pools_->Get("web").status().code(), ErrorCode::kNotFound);
  EXPECT_EQ(MembersOf("web").size(), 0u);
  EXPECT_EQ(MembersOf("other").size(), 1u);
  FE_ASSERT_OK(engine().Get("kept"));
  FE_ASSERT_OK(engine().Get("tmpl"));
  EXPECT_EQ(engine().List().size(), 3u);
  struct stat st {};
  EXPECT_NE(::stat((fixture_.DataRoot() + "/pools/web.json").c_str(), &st), 0);
  FE_ASSERT_OK(Restart());
  EXPECT_EQ(pools_->List().size(), 1u);
  EXPECT_EQ(engine().List().size(), 3u);
}

TEST_F(PoolTest, RefillLoopFillsAPoolAfterCreateWithoutManualTicks) {
  pools_.reset();
  PoolConfig config;
  config.cpu_budget_vcpus = budget_;
  config.tick = std::chrono::milliseconds(20);
  config.load = std::make_unique<FakeLoad>(busy_);
  Result<std::unique_ptr<PoolManager>> opened = PoolManager::Open(engine(), fixture_.DataRoot(), std::move(config));
  FE_ASSERT_OK(opened);
  pools_ = std::move(*opened);
  FE_ASSERT_OK(pools_->Create(Spec("web", 1, 2)));
  // Generous bound only against a hang; the loop needs a few ticks.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (StatusOf("web").ready < 2 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(StatusOf("web").ready, 2);
  pools_.reset();  // stops the loop and the workers
  EXPECT_EQ(MembersOf("web").size(), 2u);
}

// The engine side of pools: Instance::pool and Engine::ReleaseFromPool.
TEST_F(PoolTest, AMemberDeletedThroughTheEngineIsNoLongerReadyAndIsReplacedAtTheNextTick) {
  ASSERT_TRUE(pools_->Create(Spec("web", 0, 3)).ok());
  FillTo("web", 3);
  std::vector<Instance> before = MembersOf("web");
  ASSERT_EQ(before.size(), 3u);
  FE_ASSERT_OK(engine().Delete(before[1].id));

  FE_ASSERT_OK(pools_->Tick());
  pools_->WaitIdle();
  std::vector<Instance> after = MembersOf("web");
  ASSERT_EQ(after.size(), 3u);
  for (const Instance& member : after) EXPECT_NE(member.id, before[1].id);
  EXPECT_EQ(StatusOf("web").ready, 3);
  for (int i = 0; i < 3; ++i) {
    Result<AcquireOutcome> acquired = pools_->Acquire("web", Named("", /*no_wait=*/true));
    FE_ASSERT_OK(acquired);
    EXPECT_TRUE(acquired->hit);
    EXPECT_NE(acquired->instance.id, before[1].id);
  }
}

TEST_F(PoolTest, PoolLabelIsWrittenOnlyForMembersAndRoundTrips) {
  EXPECT_FALSE(InstanceToJson(template_).contains("pool"));
  Instance member = template_;
  member.pool = "web";
  nlohmann::json json = InstanceToJson(member);
  EXPECT_EQ(json["pool"], "web");
  Result<Instance> parsed = InstanceFromJson(json, "member.json");
  FE_ASSERT_OK(parsed);
  EXPECT_EQ(parsed->pool, "web");
}

TEST_F(PoolTest, ReleaseFromPoolRefusesAnInstanceThatIsNotAMember) {
  Result<Instance> released = engine().ReleaseFromPool("tmpl", "x");
  ASSERT_FALSE(released.ok());
  EXPECT_EQ(released.status().code(), ErrorCode::kFailedPrecondition);
  EXPECT_EQ(engine().ReleaseFromPool("ghost", "x").status().code(), ErrorCode::kNotFound);
}

TEST_F(PoolTest, ReleaseFromPoolFreesTheOldNameAndATakenNameChangesNothing) {
  ForkRequest request;
  request.name = "member-1";
  request.pool = "web";
  Result<std::vector<ForkOutcome>> forked = engine().Fork("tmpl", request);
  FE_ASSERT_OK(forked);
  EXPECT_EQ(forked->front().instance.pool, "web");
  EXPECT_EQ(engine().ReleaseFromPool("member-1", "tmpl").status().code(), ErrorCode::kAlreadyExists);
  EXPECT_EQ(engine().ReleaseFromPool("member-1", "Bad Name").status().code(), ErrorCode::kInvalidArgument);
  Result<Instance> unchanged = engine().Get("member-1");
  FE_ASSERT_OK(unchanged);
  EXPECT_EQ(unchanged->pool, "web");
  Result<Instance> released = engine().ReleaseFromPool("member-1", "carol");
  FE_ASSERT_OK(released);
  EXPECT_EQ(released->name, "carol");
  EXPECT_TRUE(released->pool.empty());
  EXPECT_EQ(engine().Get("member-1").status().code(), ErrorCode::kNotFound);
  // The old name is free again; and the release survives a restart.
  ForkRequest reuse;
  reuse.name = "member-1";
  FE_ASSERT_OK(engine().Fork("tmpl", reuse));
  FE_ASSERT_OK(Restart());
  Result<Instance> after = engine().Get("carol");
  FE_ASSERT_OK(after);
  EXPECT_TRUE(after->pool.empty());
  EXPECT_EQ(after->id, released->id);
}

}  // namespace
}  // namespace fe::engine::pools
