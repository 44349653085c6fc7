// The pools' refill side: Tick (measure, plan, shrink, queue refills), the loop that calls it, and the
// workers that make members. Locking: mutex_ guards the pools' counters and lists; no engine call that
// forks or deletes is made with it held (lookups are: the engine never calls back into the pools).
#include <spdlog/spdlog.h>

#include <set>

#include "engine/pools/pool.h"
#include "engine/pools/pool_sizing.h"

namespace fe::engine::pools {

Status PoolManager::Tick() {
  std::lock_guard tick(tick_mutex_);
  Result<double> busy = config_.load->BusyFraction();
  SizingInput input;
  input.budget_vcpus = budget_vcpus_;
  input.other_used_vcpus = RunningNonMemberVcpus();
  input.busy_fraction = busy.ok() ? *busy : 1.0;  // unmeasurable: as if busy, so no refill competes
  input.busy_threshold = config_.busy_threshold;
  input.max_parallel_refills = config_.max_parallel_refills;
  input.budget_memory_bytes = memory_budget_;
  MeasureMemory();

  // Members deleted through the engine's API are no longer ready. Looked for only when something was
  // deleted since the last look, and without mutex_ held, so acquires never wait for the walk.
  std::set<std::string> gone;
  if (const uint64_t removals = engine_.removals(); removals != removals_seen_) {
    for (const std::string& id : ReadyMembers()) {
      if (!engine_.Exists(id)) gone.insert(id);
    }
    removals_seen_ = removals;
  }
  std::vector<std::pair<std::string, std::string>> removed;    // member id, pool
  std::vector<std::pair<std::string, bool>> throttle_changes;  // pool, throttled now
  {
    std::lock_guard lock(mutex_);
    const auto now = Now();
    input.acquiring = last_acquire_ && now - *last_acquire_ < config_.acquire_quiet;
    input.other_used_memory_bytes = other_memory_;
    std::vector<Pool*> order;
    for (auto& [name, pool] : pools_) {
      if (pool->deleting) continue;
      if (!gone.empty()) std::erase_if(pool->ready, [&gone](const std::string& id) { return gone.contains(id); });
      order.push_back(pool.get());
      if (!input.acquiring) pool->growth_deferred_since.reset();
      pool->memory_used = MemoryUsedBy(*pool);
      const bool overdue =
          pool->growth_deferred_since && now - *pool->growth_deferred_since >= config_.max_growth_deferral;
      input.pools.push_back({name, pool->spec.min_size, pool->spec.max_size, static_cast<int>(pool->ready.size()),
                             pool->refilling, pool->vcpus_per_member, overdue,
                             pool->failures_in_a_row > 0 && now < pool->retry_at, pool->memory_used,
                             pool->memory_per_member});
    }
    SizingPlan plan = PlanPoolSizing(input);
    for (size_t i = 0; i < order.size(); ++i) {
      Pool& pool = *order[i];
      const PoolSizingDecision& decision = plan.pools[i];
      if (pool.throttled != plan.throttled) throttle_changes.emplace_back(pool.spec.name, plan.throttled);
      pool.throttled = plan.throttled;
      // Kept while the acquires go on, so an overdue pool keeps growing until they pause.
      if (decision.growth_deferred && !pool.growth_deferred_since) pool.growth_deferred_since = now;
      for (int n = 0; n < decision.removals && !pool.ready.empty(); ++n) {
        removed.emplace_back(pool.ready.back(), pool.spec.name);  // the newest go first
        pool.ready.pop_back();
      }
      for (int n = 0; n < decision.refills; ++n) queue_.push_back(pool.spec.name);
      pool.refilling += decision.refills;
      in_flight_ += decision.refills;
    }
  }
  work_cv_.notify_all();
  for (const auto& [pool, throttled] : throttle_changes) {
    engine_.events().Publish("pool.throttled", {{"pool", pool}, {"throttled", throttled}});
  }
  for (const auto& [id, pool] : removed) {
    DeleteMember(id, "pool '" + pool + "' shrinks toward its minimum: the CPU or memory budget is needed");
  }
  if (!busy.ok()) return busy.status().Annotate("measuring CPU load (no refill this round)");
  return Status::Ok();
}

std::vector<std::string> PoolManager::ReadyMembers() const {
  std::vector<std::string> ids;
  std::lock_guard lock(mutex_);
  for (const auto& [name, pool] : pools_) ids.insert(ids.end(), pool->ready.begin(), pool->ready.end());
  return ids;
}

void PoolManager::WaitIdle() {
  std::unique_lock lock(mutex_);
  idle_cv_.wait(lock, [&] { return in_flight_ == 0; });
}

void PoolManager::Poke() {
  {
    std::lock_guard lock(mutex_);
    poked_ = true;
  }
  loop_cv_.notify_one();
}

void PoolManager::LoopMain() {
  std::string last_error;
  std::unique_lock lock(mutex_);
  while (!stopping_) {
    loop_cv_.wait_for(lock, config_.tick, [&] { return stopping_ || poked_; });
    if (stopping_) break;
    poked_ = false;
    lock.unlock();
    Status ticked = Tick();
    if (ticked.ok()) ticked = SaveCounters();
    if (!ticked.ok() && ticked.message() != last_error) spdlog::warn("pool refill loop: {}", ticked.ToString());
    last_error = ticked.ok() ? std::string() : ticked.message();
    lock.lock();
  }
}

void PoolManager::WorkerMain() {
  std::unique_lock lock(mutex_);
  while (true) {
    work_cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
    if (stopping_) {
      // Queued refills are dropped; those in flight on other workers finish.
      for (const std::string& name : queue_) {
        if (auto pool = pools_.find(name); pool != pools_.end()) --pool->second->refilling;
        --in_flight_;
      }
      queue_.clear();
      idle_cv_.notify_all();
      return;
    }
    std::string name = std::move(queue_.front());
    queue_.pop_front();
    lock.unlock();
    Refill(name);
    lock.lock();
  }
}

void PoolManager::Refill(const std::string& name) {
  std::shared_ptr<Pool> pool;
  bool wanted = false;
  {
    std::lock_guard lock(mutex_);
    if (auto found = pools_.find(name); found != pools_.end()) {
      pool = found->second;
      wanted = !pool->deleting;
    }
  }
  std::optional<Result<std::vector<ForkOutcome>>> forked;
  double seconds = 0;
  if (wanted) {
    ForkRequest request;
    request.name = MemberName(name);
    request.target_state = pool->spec.member_state;
    request.memory = MemberMemory(pool->spec);
    request.pool = name;
    const auto started = Now();
    forked.emplace(engine_.Fork(pool->spec.template_id, request));
    seconds = std::chrono::duration<double>(Now() - started).count();
  }
  const bool made = forked && forked->ok();
  std::string member = made ? (*forked)->front().instance.id : std::string();
  bool kept = false;
  std::optional<nlohmann::json> failure;  // the pool.refill_failed event
  {
    std::lock_guard lock(mutex_);
    if (made) {
      pool->failures_in_a_row = 0;
      pool->backoff = std::chrono::milliseconds(0);
    }
    if (made && !pool->deleting) {
      pool->ready.push_back(member);
      ++pool->counters.refills;
      pool->counters.refill_seconds_total += seconds;
      kept = true;
    } else if (forked && !forked->ok()) {
      ++pool->counters.refill_failures;
      // A refill that cannot work now (a deleted template, a full disk) is not retried at once: the
      // wait doubles with each failure in a row, up to kRefillBackoffMax.
      ++pool->failures_in_a_row;
      pool->backoff = pool->backoff.count() == 0 ? kRefillBackoffFirst : std::min(pool->backoff * 2, kRefillBackoffMax);
      pool->retry_at = Now() + pool->backoff;
      if (pool->last_refill_error != forked->status().message()) {
        spdlog::warn("pool '{}': refill failed: {}", name, forked->status().ToString());
      }
      pool->last_refill_error = forked->status().message();
      failure = nlohmann::json{{"pool", name},
                               {"message", forked->status().message()},
                               {"failures_in_a_row", pool->failures_in_a_row},
                               {"backoff_ms", pool->backoff.count()}};
    }
  }
  if (failure) engine_.events().Publish("pool.refill_failed", std::move(*failure));
  if (kept) {
    const Instance& instance = (*forked)->front().instance;
    engine_.events().Publish(
        "pool.refilled", {{"pool", name}, {"instance", instance.id}, {"name", instance.name}, {"seconds", seconds}});
  }
  // A member made for a pool being deleted goes before the refill counts as finished, so Delete
  // returns with none of its members left.
  if (made && !kept) DeleteMember(member, "pool '" + name + "' is deleted");
  // Before the refill counts as finished, so WaitIdle() returns after the callback.
  if (kept && config_.on_refill) config_.on_refill(name, seconds);
  {
    std::lock_guard lock(mutex_);
    if (pool) --pool->refilling;
    --in_flight_;
  }
  idle_cv_.notify_all();
  Poke();  // a refill slot is free: the next refill need not wait for the tick
}

}  // namespace fe::engine::pools
