// Pools: ready forks of a template instance, handed out at once and refilled in the background within
// a CPU budget (issue #6). The sizing policy itself is pure and lives in engine/pool_sizing.h; the
// load measurement in engine/load_source.h; the persisted specs in engine/pool_store.h.
//
// A pool member is an ordinary instance (a fork of the template made with Engine::Fork, named
// "<pool>-<8 hex>", target state the pool's member_state) whose metadata carries the pool's name
// (Instance::pool). Acquire takes a ready member out of the pool: Engine::ReleaseFromPool renames it
// to the caller's name (or it keeps its generated one) and clears its pool label, durably (one
// group-committed journal record: engine/release_journal.h); from then on it is a normal instance. Pools are persisted
// under <data_root>/pools/<name>.json; their members are instances, recovered by the engine like any other (a member
// half-made by a crash is an intent, removed by Engine::Open), and relinked to their pool by PoolManager::Open.
//
// CPU budget. Every member costs its template's vCPU count; running instances that are not members
// cost theirs. Create admits a pool only if its minimum fits: min_size x vcpus <= budget - committed,
// where committed = the other pools' minimums (min_size x vcpus each) + the vCPUs of running
// non-member instances. Members above the minimums are opportunistic: the refill loop makes them only
// while they fit and removes them again (most surplus first, never below a minimum) when running
// instances need the budget (pool_sizing.h).
//
// Refill loop. A thread ticks every PoolConfig::tick (and at once after a create, a finished refill,
// or an acquire that leaves a pool below its minimum): measure the load, plan (PlanPoolSizing), delete
// the members the plan removes, queue the refills it starts. Refills run on max_parallel_refills
// worker threads. Member names are never reused.
// Acquires come first: while they are being served (one within PoolConfig::acquire_quiet), pools
// grow above their minimum only once their growth has waited PoolConfig::max_growth_deferral
// (pool_sizing.h, step 3b); minimums are refilled at once.
//
// Threads: every public method may be called concurrently. Acquires of one pool never get the same
// member (the ready list is taken under the manager's mutex); they never wait for a refill.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "base/clock.h"
#include "base/status.h"
#include "engine/engine.h"
#include "engine/vm/process_memory.h"
#include "engine/instance.h"
#include "engine/pools/load_source.h"
#include "engine/pools/pool_spec.h"
#include "engine/pools/pool_store.h"

namespace fe::engine::pools {

struct PoolStatus {
  PoolSpec spec;
  int vcpus_per_member = 1;  // the template's vCPU count
  int ready = 0;             // members waiting to be acquired
  int refilling = 0;         // forks queued or in flight for this pool
  PoolCounters counters;
  std::string last_refill_error;  // the latest refill failure, empty when none
  bool throttled = false;         // the last tick saw the host above the busy threshold
  // After failed refills, the next one waits: 0 when the last refill worked, else the current wait
  // (kRefillBackoffFirst doubling per failure up to kRefillBackoffMax).
  int64_t refill_backoff_ms = 0;
  MemoryMode memory = MemoryMode::kPrivate;  // what the next member gets (PoolSpec::memory resolved)
  // Against the memory budget (pool_memory.cc): what one member holds on its own (the average of its
  // measured Running members, kept from the last measurement; 0 for Standby members or before any
  // was measured), and what its members hold now (measured, estimated for the rest).
  uint64_t memory_per_member_bytes = 0;
  uint64_t memory_used_bytes = 0;
  // What its measured Running members map together with other processes (a shared-memory member's
  // template pages): shared, not counted against the budget.
  uint64_t memory_shared_bytes = 0;
};

// How long a pool waits before the next refill after its first failed one, and at most.
inline constexpr std::chrono::milliseconds kRefillBackoffFirst{100};
inline constexpr std::chrono::milliseconds kRefillBackoffMax{30'000};

struct AcquireRequest {
  std::string name;      // the acquired instance's new name; empty: keep the member's name
  bool no_wait = false;  // empty pool: fail with kUnavailable (HTTP 503) instead of forking on demand
  // The acquired instance's lifecycle policy (issue #23), as at create and fork.
  std::optional<int64_t> ttl_s;
  int64_t idle_standby_s = 0;
};

struct AcquireOutcome {
  Instance instance;
  bool hit = false;  // from a ready member (false: forked on demand)
  int64_t latency_us = 0;
};

struct PoolConfig {
  // vCPUs all pool members and running instances may use together. 0: host cores x overcommit.
  int cpu_budget_vcpus = 0;
  double overcommit = 4.0;
  double busy_threshold = 0.8;          // no refill while the measured busy fraction is above this
  std::chrono::milliseconds tick{200};  // how often the refill loop looks
  int max_parallel_refills = 2;         // forks queued or in flight across all pools (>= 1)
  // After an acquire, growth above the minimums waits until no acquire came for acquire_quiet, or at
  // most max_growth_deferral (then the pools grow as usual until the next pause).
  std::chrono::milliseconds acquire_quiet{50};
  std::chrono::milliseconds max_growth_deferral{1000};
  const Clock* clock = nullptr;      // null: SystemClock(); must outlive the manager
  std::unique_ptr<LoadSource> load;  // empty: MakeHostLoadSource()
  // Called after each refill fork that made a member (for a latency histogram), on a worker thread,
  // with no lock of the manager held, before the refill counts as finished (WaitIdle waits for it).
  // Must not call back into the PoolManager.
  std::function<void(const std::string& pool, double seconds)> on_refill;
  // Memory that Running pool members and running instances may hold together, each counted by what
  // it holds on its own (private bytes: pool_memory.cc). 0: 80% of the host's MemTotal.
  uint64_t memory_budget_bytes = 0;
  // What a Running instance's hypervisor process holds (private bytes: on its own; shared bytes: with
  // other processes); nullopt when it cannot tell. Empty: /proc/PID/smaps_rollup
  // (engine/vm/process_memory.h). Tests inject figures.
  std::function<std::optional<vm::ProcessMemory>(const Instance&)> measure_memory;
  // How often Tick measures (a measurement reads every running instance's smaps_rollup).
  std::chrono::milliseconds memory_sample_interval{1000};
};

// 80% of the host's MemTotal: PoolConfig::memory_budget_bytes when it is 0.
uint64_t DefaultMemoryBudget();

class PoolManager {
 public:
  // Loads <data_root>/pools/*.json and relinks members (instances whose `pool` names a pool, in the
  // pool's member_state, oldest first). Members of pools that no longer exist, and members no longer
  // in their pool's member_state (a Running member whose process died is Stopped after recovery),
  // are deleted. Starts the refill workers, and the refill loop unless `start_loop` is false (tests
  // drive Tick() by hand).
  static Result<std::unique_ptr<PoolManager>> Open(Engine& engine, std::string data_root, PoolConfig config,
                                                   bool start_loop = true);
  ~PoolManager();  // stops the loop; refills in flight finish first, queued ones are dropped

  // InvalidArgument (name, sizes, member_state), AlreadyExists (name taken), NotFound (template),
  // FailedPrecondition (template not Stopped or Standby, or itself a pool member; member_state Standby
  // with a Stopped template; or the minimum does not fit the budget, with a message naming the
  // numbers: "pool 'p' needs 8 vCPUs at its minimum size; the CPU budget is 16 vCPUs and 12 are
  // committed ..."). A hypervisor that cannot fork the template shows at the first refill
  // (last_refill_error) and at on-demand acquires (kUnsupported).
  Result<PoolStatus> Create(const PoolSpec& spec);
  Result<PoolStatus> Get(const std::string& name) const;  // NotFound
  std::vector<PoolStatus> List() const;                   // sorted by name
  // Stops the pool's refills (waits for those in flight), removes its spec durably, then deletes its
  // ready members. Acquired instances are not affected. NotFound.
  Status Delete(const std::string& name);
  // NotFound (pool); InvalidArgument (name, policy); AlreadyExists (request.name taken: the member goes
  // back to the pool);
  // Unavailable (empty pool and no_wait); on-demand fork errors as Engine::Fork gives them.
  Result<AcquireOutcome> Acquire(const std::string& name, const AcquireRequest& request);

  // One round of the sizing policy: measures load, plans (pool_sizing.h), deletes removed members and
  // queues refills. The loop calls it every `tick`; tests call it directly. Returns the load source's
  // error, if any (the round then ran as if the host were busy: shrinking only).
  Status Tick();
  // Writes the counters of every pool whose counters changed since they were last saved. The loop
  // calls it after each tick, the destructor once more; tests call it directly.
  Status SaveCounters();
  // Waits until no refill is queued or in flight (tests, shutdown).
  void WaitIdle();

  int cpu_budget_vcpus() const { return budget_vcpus_; }
  int cpu_used_vcpus() const;  // members (ready and being made) + running non-member instances
  uint64_t memory_budget_bytes() const { return memory_budget_; }
  uint64_t memory_used_bytes() const;  // as the last measurement saw it (pool_memory.cc)

 private:
  struct Pool {
    PoolSpec spec;
    int vcpus_per_member = 1;
    std::deque<std::string> ready;  // member ids, oldest first
    int refilling = 0;              // queued + in flight
    bool deleting = false;
    PoolCounters counters;
    PoolCounters saved;  // what the spec file holds
    std::string last_refill_error;
    bool throttled = false;
    // Since when growth above the minimum has waited for acquires to pause; empty when it has not.
    std::optional<std::chrono::steady_clock::time_point> growth_deferred_since;
    // Failed refills in a row, and when the next may start (exponential backoff, reset by a success).
    int failures_in_a_row = 0;
    std::chrono::milliseconds backoff{0};
    Clock::SteadyPoint retry_at{};
    uint64_t memory_per_member = 0;  // PoolStatus::memory_per_member_bytes
    uint64_t memory_used = 0;        // PoolStatus::memory_used_bytes
    uint64_t memory_measured = 0;    // the last measurement: what its Running members held, and how many
    int members_measured = 0;
    uint64_t memory_shared = 0;  // PoolStatus::memory_shared_bytes
  };

  PoolManager(Engine& engine, PoolStore store, PoolConfig config);
  Clock::SteadyPoint Now() const { return clock_.Now(); }
  PoolStatus StatusOf(const Pool& pool) const;  // REQUIRES: mutex_
  Status Relink();                              // Open: members back into their pools
  int RunningNonMemberVcpus() const;
  std::vector<std::string> ReadyMembers() const;              // of every pool
  int CommittedVcpusLocked(const std::string& except) const;  // REQUIRES: mutex_
  // A member name "<pool>-<8 hex>".
  static std::string MemberName(const std::string& pool);
  void Poke();
  void LoopMain();
  void WorkerMain();
  void Refill(const std::string& pool);  // one refill fork (a worker's job): pool_refill.cc
  void DeleteMember(const std::string& id, const std::string& why);
  // A miss: a fork of the template, not a member, named `name` (empty: a generated member name).
  Result<Instance> ForkOnDemand(const PoolSpec& spec, const AcquireRequest& acquire);
  // The memory mode of the pool's next member: the spec's, else shared where the template can share.
  MemoryMode MemberMemory(const PoolSpec& spec) const;
  // pool_memory.cc: measures what Running members and other running instances hold (at most every
  // memory_sample_interval) and updates each pool's memory figures. REQUIRES: tick_mutex_, not mutex_.
  void MeasureMemory();
  // The pool's members' memory now: the last measured sum, plus the estimate for the members made
  // since (or not measurable).
  static uint64_t MemoryUsedBy(const Pool& pool);
  // The engine's delete guard: a pool's template is not deleted while the pool exists.
  Status RefuseTemplateDelete(const Instance& instance) const;

  Engine& engine_;
  PoolStore store_;
  PoolConfig config_;
  const Clock& clock_;
  const int budget_vcpus_;
  const uint64_t memory_budget_;

  std::mutex admin_mutex_;                 // serialises Create and Delete (they persist outside mutex_)
  std::mutex tick_mutex_;                  // one Tick at a time
  uint64_t removals_seen_ = ~uint64_t{0};  // Engine::removals() when Tick last looked; GUARDED_BY(tick_mutex_)
  std::optional<Clock::SteadyPoint> memory_sampled_at_;  // GUARDED_BY(tick_mutex_)
  uint64_t other_memory_ = 0;  // running instances that are not members, last measured; GUARDED_BY(mutex_)

  mutable std::mutex mutex_;
  std::map<std::string, std::shared_ptr<Pool>> pools_;                 // GUARDED_BY(mutex_)
  std::deque<std::string> queue_;                                      // pool names to refill; GUARDED_BY(mutex_)
  int in_flight_ = 0;                                                  // queued + running refills; GUARDED_BY(mutex_)
  bool stopping_ = false;                                              // GUARDED_BY(mutex_)
  bool poked_ = false;                                                 // GUARDED_BY(mutex_)
  std::optional<std::chrono::steady_clock::time_point> last_acquire_;  // GUARDED_BY(mutex_)
  std::condition_variable work_cv_;                                    // queue_ or stopping_ changed (workers)
  std::condition_variable idle_cv_;                                    // a refill finished (WaitIdle, Delete)
  std::condition_variable loop_cv_;                                    // poked_ or stopping_ (the loop)
  std::vector<std::thread> workers_;
  std::thread loop_;
};

}  // namespace fe::engine::pools
