// PoolManager: admission of pools, acquire, the refill loop and its workers. The sizing decisions are
// PlanPoolSizing's (pool_sizing.h); this file only measures, asks and carries out.
#include "engine/pools/pool.h"

#include <algorithm>
#include <cmath>

#include <spdlog/spdlog.h>

#include "engine/data_root.h"
#include "engine/pools/pool_sizing.h"

namespace fe::engine::pools {
namespace {

constexpr size_t kMaxPoolNameLength = 54;  // members are "<pool>-<8 hex>", at most 63 characters

Status PoolNotFound(const std::string& name) { return Status::NotFound("pool '" + name + "' not found"); }

int DefaultBudget(double overcommit) {
  unsigned cores = std::max(1u, std::thread::hardware_concurrency());
  return std::max(1, static_cast<int>(std::floor(cores * overcommit)));
}

Status ValidateSpec(const PoolSpec& spec) {
  if (Status name = ValidateInstanceName(spec.name); !name.ok())
    return Status::InvalidArgument("pool name: " + name.message());
  if (spec.name.size() > kMaxPoolNameLength) {
    return Status::InvalidArgument("pool name '" + spec.name + "' is longer than " +
                                   std::to_string(kMaxPoolNameLength) +
                                   " characters (its members are named <pool>-<8 hex digits>)");
  }
  if (spec.min_size < 0 || spec.max_size < 1 || spec.min_size > spec.max_size) {
    return Status::InvalidArgument("pool '" + spec.name + "': sizes min " + std::to_string(spec.min_size) + ", max " +
                                   std::to_string(spec.max_size) + " are not 0 <= min <= max, max >= 1");
  }
  if (spec.member_state != InstanceState::kStandby && spec.member_state != InstanceState::kRunning) {
    return Status::InvalidArgument("pool '" + spec.name + "': member_state " +
                                   std::string(InstanceStateName(spec.member_state)) + " is not Standby or Running");
  }
  return Status::Ok();
}

}  // namespace

PoolManager::PoolManager(Engine& engine, PoolStore store, PoolConfig config)
    : engine_(engine),
      store_(std::move(store)),
      config_(std::move(config)),
      clock_(config_.clock != nullptr ? *config_.clock : SystemClock()),
      budget_vcpus_(config_.cpu_budget_vcpus > 0 ? config_.cpu_budget_vcpus : DefaultBudget(config_.overcommit)),
      memory_budget_(config_.memory_budget_bytes > 0 ? config_.memory_budget_bytes : DefaultMemoryBudget()) {}

Result<std::unique_ptr<PoolManager>> PoolManager::Open(Engine& engine, std::string data_root, PoolConfig config,
                                                       bool start_loop) {
  if (config.max_parallel_refills < 1) return Status::InvalidArgument("max_parallel_refills must be at least 1");
  if (config.cpu_budget_vcpus < 0) return Status::InvalidArgument("cpu_budget_vcpus must not be negative");
  if (config.cpu_budget_vcpus == 0 && !(config.overcommit > 0))
    return Status::InvalidArgument("overcommit must be positive");
  if (config.tick.count() <= 0) return Status::InvalidArgument("the pool tick must be positive");
  if (!config.load) config.load = MakeHostLoadSource();
  Result<PoolStore> store = PoolStore::Open(DataRoot(data_root).Pools());
  if (!store.ok()) return store.status();
  std::unique_ptr<PoolManager> manager(new PoolManager(engine, std::move(*store), std::move(config)));

  Result<std::vector<StoredPool>> stored = manager->store_.List();
  if (!stored.ok()) return stored.status().Annotate("loading pools");
  for (auto& [spec, counters] : *stored) {
    auto pool = std::make_shared<Pool>();
    pool->counters = pool->saved = counters;
    Result<Instance> template_instance = engine.Get(spec.template_id);
    if (template_instance.ok()) {
      pool->vcpus_per_member = template_instance->vcpus;
    } else {
      spdlog::warn("pool '{}': template {}: {}; the pool cannot refill", spec.name, spec.template_id,
                   template_instance.status().ToString());
    }
    pool->spec = std::move(spec);
    manager->pools_.emplace(pool->spec.name, std::move(pool));
  }
  FE_RETURN_IF_ERROR(manager->Relink());

  for (int i = 0; i < manager->config_.max_parallel_refills; ++i) {
    manager->workers_.emplace_back([raw = manager.get()] { raw->WorkerMain(); });
  }
  if (start_loop) manager->loop_ = std::thread([raw = manager.get()] { raw->LoopMain(); });
  engine.SetDeleteGuard(
      [raw = manager.get()](const Instance& instance) { return raw->RefuseTemplateDelete(instance); });
  spdlog::info("pools: {} pool(s), CPU budget {} vCPUs, memory budget {} MiB", manager->pools_.size(),
               manager->budget_vcpus_, manager->memory_budget_ >> 20);
  return manager;
}

PoolManager::~PoolManager() {
  engine_.SetDeleteGuard(nullptr);
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  loop_cv_.notify_all();
  work_cv_.notify_all();
  if (loop_.joinable()) loop_.join();
  for (std::thread& worker : workers_) worker.join();
  if (Status saved = SaveCounters(); !saved.ok()) spdlog::warn("pools: counters not saved: {}", saved.ToString());
}

Status PoolManager::SaveCounters() {
  // admin_mutex_: a pool being deleted never gets its spec file back from a late save.
  std::lock_guard admin(admin_mutex_);
  std::vector<std::pair<PoolSpec, PoolCounters>> changed;
  {
    std::lock_guard lock(mutex_);
    for (const auto& [name, pool] : pools_) {
      if (!pool->deleting && pool->counters != pool->saved) changed.emplace_back(pool->spec, pool->counters);
    }
  }
  Status result;
  for (const auto& [spec, counters] : changed) {
    Status written = store_.Write(spec, counters);
    if (!written.ok()) {
      result = written.Annotate("saving the counters of pool '" + spec.name + "'");
      continue;
    }
    std::lock_guard lock(mutex_);
    if (auto pool = pools_.find(spec.name); pool != pools_.end()) pool->second->saved = counters;
  }
  return result;
}

Status PoolManager::RefuseTemplateDelete(const Instance& instance) const {
  std::string pools;
  {
    std::lock_guard lock(mutex_);
    for (const auto& [name, pool] : pools_) {
      if (pool->deleting || (pool->spec.template_id != instance.id && pool->spec.template_id != instance.name))
        continue;
      pools += (pools.empty() ? "'" : ", '") + name + "'";
    }
  }
  if (pools.empty()) return Status::Ok();
  return Status::FailedPrecondition("instance '" + instance.name + "' is the template of pool(s) " + pools +
                                    ": delete the pool(s) first");
}

Status PoolManager::Relink() {
  std::vector<std::pair<std::string, std::string>> doomed;  // id, why
  for (const Instance& instance : engine_.List()) {         // oldest first
    if (instance.pool.empty()) continue;
    auto pool = pools_.find(instance.pool);
    if (pool == pools_.end()) {
      doomed.emplace_back(instance.id, "its pool '" + instance.pool + "' no longer exists");
    } else if (instance.state != pool->second->spec.member_state) {
      doomed.emplace_back(instance.id, "it is " + std::string(InstanceStateName(instance.state)) + ", not " +
                                           std::string(InstanceStateName(pool->second->spec.member_state)));
    } else {
      pool->second->ready.push_back(instance.id);
    }
  }
  for (const auto& [id, why] : doomed) DeleteMember(id, why);
  return Status::Ok();
}

std::string PoolManager::MemberName(const std::string& pool) { return pool + "-" + NewInstanceId().substr(2, 8); }

PoolStatus PoolManager::StatusOf(const Pool& pool) const {
  PoolStatus status;
  status.spec = pool.spec;
  status.vcpus_per_member = pool.vcpus_per_member;
  status.ready = static_cast<int>(pool.ready.size());
  status.refilling = pool.refilling;
  status.counters = pool.counters;
  status.last_refill_error = pool.last_refill_error;
  status.throttled = pool.throttled;
  status.refill_backoff_ms = pool.failures_in_a_row > 0 ? pool.backoff.count() : 0;
  status.memory_per_member_bytes = pool.memory_per_member;
  status.memory_used_bytes = pool.memory_used;
  status.memory_shared_bytes = pool.memory_shared;
  return status;
}

int PoolManager::RunningNonMemberVcpus() const { return engine_.RunningVcpusOutsidePools(); }

int PoolManager::CommittedVcpusLocked(const std::string& except) const {
  int committed = 0;
  for (const auto& [name, pool] : pools_) {
    if (name != except) committed += pool->spec.min_size * pool->vcpus_per_member;
  }
  return committed;
}

int PoolManager::cpu_used_vcpus() const {
  int used = RunningNonMemberVcpus();
  std::lock_guard lock(mutex_);
  for (const auto& [name, pool] : pools_) {
    used += (static_cast<int>(pool->ready.size()) + pool->refilling) * pool->vcpus_per_member;
  }
  return used;
}

Result<PoolStatus> PoolManager::Create(const PoolSpec& requested) {
  std::lock_guard admin(admin_mutex_);
  FE_RETURN_IF_ERROR(ValidateSpec(requested));
  Result<Instance> template_instance = engine_.Get(requested.template_id);
  if (!template_instance.ok()) {
    return Status(template_instance.status().code(),
                  "pool '" + requested.name + "': template instance '" + requested.template_id + "' not found");
  }
  const Instance& source = *template_instance;
  if (source.state != InstanceState::kStopped && source.state != InstanceState::kStandby) {
    return Status::FailedPrecondition("pool '" + requested.name + "': template '" + source.name + "' is " +
                                      std::string(InstanceStateName(source.state)) +
                                      "; a template must be Stopped or Standby");
  }
  if (!source.pool.empty()) {
    return Status::FailedPrecondition("pool '" + requested.name + "': template '" + source.name +
                                      "' is a member of pool '" + source.pool + "'");
  }
  if (requested.member_state == InstanceState::kStandby && source.state != InstanceState::kStandby) {
    return Status::FailedPrecondition("pool '" + requested.name +
                                      "': Standby members need a Standby "
                                      "template, and '" +
                                      source.name +
                                      "' is Stopped (use "
                                      "member_state Running)");
  }
  PoolSpec spec = requested;
  spec.template_id = source.id;
  const int other_running = RunningNonMemberVcpus();
  {
    std::lock_guard lock(mutex_);
    if (pools_.count(spec.name) != 0) return Status::AlreadyExists("pool '" + spec.name + "' already exists");
    const int committed = CommittedVcpusLocked(spec.name) + other_running;
    const int needed = spec.min_size * source.vcpus;
    if (needed > budget_vcpus_ - committed) {
      return Status::FailedPrecondition(
          "pool '" + spec.name + "' needs " + std::to_string(needed) + " vCPUs at its minimum size (" +
          std::to_string(spec.min_size) + " x " + std::to_string(source.vcpus) + " of template '" + source.name +
          "'); the CPU budget is " + std::to_string(budget_vcpus_) + " vCPUs and " + std::to_string(committed) +
          " are committed (other pools' minimums and running instances)");
    }
  }
  if (spec.memory == MemoryMode::kShared) {
    if (spec.member_state == InstanceState::kStopped) {
      return Status::InvalidArgument("pool '" + spec.name +
                                     "': memory \"shared\" needs members restored from the template's snapshot "
                                     "(member_state Standby or Running); Stopped members boot with fresh RAM");
    }
    if (!engine_.CanShareMemory(source.id)) {
      return Status::FailedPrecondition("pool '" + spec.name + "': template '" + source.name +
                                        "' cannot share its memory (it must be Standby, and its hypervisor must map "
                                        "its snapshot's memory file: qemu with a memory_file, or firecracker)");
    }
  }
  FE_RETURN_IF_ERROR(store_.Write(spec, PoolCounters{}));
  PoolStatus status;
  {
    std::lock_guard lock(mutex_);
    auto pool = std::make_shared<Pool>();
    pool->spec = spec;
    pool->vcpus_per_member = source.vcpus;
    status = StatusOf(*pool);
    pools_.emplace(spec.name, std::move(pool));
  }
  spdlog::info("pool '{}' created: template {} ('{}'), {} members, {}..{}", spec.name, source.id, source.name,
               InstanceStateName(spec.member_state), spec.min_size, spec.max_size);
  Poke();
  status.memory = MemberMemory(status.spec);
  return status;
}

// The memory mode is resolved outside mutex_: it asks the engine.
Result<PoolStatus> PoolManager::Get(const std::string& name) const {
  PoolStatus status;
  {
    std::lock_guard lock(mutex_);
    auto pool = pools_.find(name);
    if (pool == pools_.end() || pool->second->deleting) return PoolNotFound(name);
    status = StatusOf(*pool->second);
  }
  status.memory = MemberMemory(status.spec);
  return status;
}

std::vector<PoolStatus> PoolManager::List() const {
  std::vector<PoolStatus> list;
  {
    std::lock_guard lock(mutex_);
    for (const auto& [name, pool] : pools_) {
      if (!pool->deleting) list.push_back(StatusOf(*pool));
    }
  }
  for (PoolStatus& status : list) status.memory = MemberMemory(status.spec);
  return list;
}

Status PoolManager::Delete(const std::string& name) {
  std::lock_guard admin(admin_mutex_);
  std::shared_ptr<Pool> pool;
  std::deque<std::string> ready;
  {
    std::unique_lock lock(mutex_);
    auto found = pools_.find(name);
    if (found == pools_.end()) return PoolNotFound(name);
    pool = found->second;
    pool->deleting = true;  // acquires and new refills of it stop here; queued ones are dropped
    idle_cv_.wait(lock, [&] { return pool->refilling == 0; });
    ready.swap(pool->ready);
  }
  // The spec first: after a crash from here on, Open() deletes the members of a pool that is gone.
  if (Status removed = store_.Remove(name); !removed.ok()) {
    std::lock_guard lock(mutex_);
    pool->deleting = false;
    pool->ready.insert(pool->ready.end(), ready.begin(), ready.end());
    return removed.Annotate("deleting pool '" + name + "'");
  }
  for (const std::string& id : ready) DeleteMember(id, "pool '" + name + "' is deleted");
  {
    std::lock_guard lock(mutex_);
    pools_.erase(name);
  }
  spdlog::info("pool '{}' deleted with {} ready member(s)", name, ready.size());
  return Status::Ok();
}

void PoolManager::DeleteMember(const std::string& id, const std::string& why) {
  Status deleted = engine_.Delete(id);
  if (deleted.ok()) {
    spdlog::info("pool member {} deleted: {}", id, why);
  } else if (deleted.code() != ErrorCode::kNotFound) {
    spdlog::warn("pool member {} ({}) could not be deleted: {}", id, why, deleted.ToString());
  }
}

Result<AcquireOutcome> PoolManager::Acquire(const std::string& name, const AcquireRequest& request) {
  const auto started = Now();
  auto finish = [&](Instance instance, bool hit) {
    AcquireOutcome outcome;
    outcome.instance = std::move(instance);
    outcome.hit = hit;
    outcome.latency_us = clock_.MicrosSince(started);
    engine_.events().Publish("pool.acquired", {{"pool", name},
                                               {"instance", outcome.instance.id},
                                               {"name", outcome.instance.name},
                                               {"hit", hit},
                                               {"latency_us", outcome.latency_us}});
    return outcome;
  };
  FE_RETURN_IF_ERROR(ValidatePolicy(request.ttl_s, request.idle_standby_s));
  if (!request.name.empty()) {
    FE_RETURN_IF_ERROR(ValidateInstanceName(request.name));
    if (engine_.Exists(request.name)) {
      return Status::AlreadyExists("instance name '" + request.name + "' is taken");
    }
  }
  while (true) {
    std::shared_ptr<Pool> pool;
    std::string member;
    {
      std::lock_guard lock(mutex_);
      auto found = pools_.find(name);
      if (found == pools_.end() || found->second->deleting) return PoolNotFound(name);
      pool = found->second;
      last_acquire_ = started;
      if (pool->ready.empty()) {
        ++pool->counters.misses;
        if (request.no_wait) return Status::Unavailable("pool '" + name + "' has no ready member");
      } else {
        member = pool->ready.front();
        pool->ready.pop_front();
      }
    }
    if (member.empty()) {
      Poke();
      Result<Instance> forked = ForkOnDemand(pool->spec, request);
      if (!forked.ok()) return forked.status();
      return finish(std::move(*forked), false);
    }
    Result<Instance> released = engine_.ReleaseFromPool(member, request.name, request.ttl_s, request.idle_standby_s);
    if (released.ok()) {
      bool below_minimum = false;
      {
        std::lock_guard lock(mutex_);
        ++pool->counters.hits;
        below_minimum = static_cast<int>(pool->ready.size()) + pool->refilling < pool->spec.min_size;
      }
      // During acquires only a pool below its minimum refills (pool_sizing.h): anything else waits for
      // a tick after they pause, and a tick per acquire would only compete with them.
      if (below_minimum || config_.acquire_quiet.count() == 0) Poke();
      return finish(std::move(*released), true);
    }
    if (released.status().code() == ErrorCode::kNotFound) continue;  // deleted behind the pool's back
    bool returned = false;
    {
      std::lock_guard lock(mutex_);
      if (!pool->deleting) {
        pool->ready.push_front(member);
        returned = true;
      }
    }
    if (!returned) DeleteMember(member, "pool '" + name + "' is deleted");
    return released.status();
  }
}

MemoryMode PoolManager::MemberMemory(const PoolSpec& spec) const {
  if (spec.memory) return *spec.memory;
  const bool restored = spec.member_state != InstanceState::kStopped;
  return restored && engine_.CanShareMemory(spec.template_id) ? MemoryMode::kShared : MemoryMode::kPrivate;
}

Result<Instance> PoolManager::ForkOnDemand(const PoolSpec& spec, const AcquireRequest& acquire) {
  ForkRequest request;
  request.name = acquire.name.empty() ? MemberName(spec.name) : acquire.name;
  request.target_state = spec.member_state;
  request.memory = MemberMemory(spec);
  request.ttl_s = acquire.ttl_s;
  request.idle_standby_s = acquire.idle_standby_s;
  Result<std::vector<ForkOutcome>> forked = engine_.Fork(spec.template_id, request);
  if (!forked.ok()) return forked.status().Annotate("pool '" + spec.name + "': on-demand fork");
  return std::move(forked->front().instance);
}

}  // namespace fe::engine::pools
