// The PoolManager test fixture: an engine on a scratch XFS with a Cloud Hypervisor real-format
// template "tmpl", pools opened with an injected load source and clock and Tick() driven by hand.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "engine/pools/pool.h"
#include "tests/engine/engine_fixture.h"
#include "tests/support/advanceable_clock.h"

namespace fe::engine::pools::test {

using engine::test::EngineFixture;
using fe::test::ScratchFs;

class FakeLoad final : public LoadSource {
 public:
  explicit FakeLoad(std::shared_ptr<std::atomic<double>> busy) : busy_(std::move(busy)) {}
  Result<double> BusyFraction() override { return busy_->load(); }

 private:
  std::shared_ptr<std::atomic<double>> busy_;
};

inline PoolSpec Spec(std::string name, int min, int max, InstanceState member_state = InstanceState::kStandby) {
  PoolSpec spec;
  spec.name = std::move(name);
  spec.template_id = "tmpl";
  spec.member_state = member_state;
  spec.min_size = min;
  spec.max_size = max;
  return spec;
}

inline AcquireRequest Named(std::string name, bool no_wait = false) {
  AcquireRequest request;
  request.name = std::move(name);
  request.no_wait = no_wait;
  return request;
}

class PoolTest : public fe::test::ScratchTest {
 protected:
  void SetUp() override {
    FE_SCRATCH_DIR(scratch, ScratchFs::kXfs);
    FE_ASSERT_OK(fixture_.Init(scratch));
    Result<Instance> made = fixture_.ImportTemplate("tmpl");
    FE_ASSERT_OK(made);
    template_ = *made;
    FE_ASSERT_OK(OpenPools());
    ready_ = true;
  }
  void TearDown() override {
    pools_.reset();
    // Running instances' stand-in processes go with them.
    if (ready_) {
      for (const Instance& instance : engine().List()) {
        if (instance.state == InstanceState::kRunning) (void)engine().Stop(instance.id);
      }
    }
  }
  Status OpenPools() {
    pools::PoolConfig config;
    config.cpu_budget_vcpus = budget_;
    config.max_parallel_refills = 2;
    config.load = std::make_unique<FakeLoad>(busy_);
    config.clock = &clock_;
    config.acquire_quiet = acquire_quiet_;
    config.max_growth_deferral = max_growth_deferral_;
    config.memory_budget_bytes = memory_budget_;
    config.measure_memory = measure_memory_;
    config.memory_sample_interval = std::chrono::milliseconds(0);  // every tick
    config.on_refill = [this](const std::string&, double seconds) {
      EXPECT_GE(seconds, 0.0);
      ++refill_callbacks_;
    };
    Result<std::unique_ptr<pools::PoolManager>> opened =
        PoolManager::Open(engine(), fixture_.DataRoot(), std::move(config), /*start_loop=*/false);
    if (!opened.ok()) return opened.status();
    pools_ = std::move(*opened);
    return Status::Ok();
  }
  // What a daemon restart does: pools, then the engine, closed and opened again.
  Status Restart() {
    pools_.reset();
    FE_RETURN_IF_ERROR(fixture_.Reopen());
    return OpenPools();
  }
  Engine& engine() { return fixture_.engine(); }
  // Ticks until the pool holds `ready` members (each tick starts at most max_parallel_refills).
  void FillTo(const std::string& pool, int ready) {
    for (int round = 0; round < 2 * ready + 2; ++round) {
      FE_ASSERT_OK(pools_->Tick());
      pools_->WaitIdle();
      Result<pools::PoolStatus> status = pools_->Get(pool);
      FE_ASSERT_OK(status);
      if (status->ready >= ready) break;
    }
    Result<pools::PoolStatus> status = pools_->Get(pool);
    FE_ASSERT_OK(status);
    ASSERT_EQ(status->ready, ready) << status->last_refill_error;
  }
  std::vector<Instance> MembersOf(const std::string& pool) {
    std::vector<Instance> members;
    for (const Instance& instance : engine().List()) {
      if (instance.pool == pool) members.push_back(instance);
    }
    return members;
  }
  PoolStatus StatusOf(const std::string& pool) {
    Result<PoolStatus> status = pools_->Get(pool);
    EXPECT_TRUE(status.ok()) << status.status().ToString();
    return status.ok() ? *status : PoolStatus{};
  }

  EngineFixture fixture_;
  bool ready_ = false;  // SetUp finished (a skipped test has no engine)
  Instance template_;
  int budget_ = 64;
  std::shared_ptr<std::atomic<double>> busy_ = std::make_shared<std::atomic<double>>(0.1);
  std::atomic<int> refill_callbacks_{0};
  // The pools' clock (refill and acquire durations are real; Advance moves it on). Acquires do not
  // hold growth back unless a test sets acquire_quiet_ before OpenPools.
  fe::test::AdvanceableClock clock_;
  void Advance(std::chrono::milliseconds by) { clock_.Advance(by); }
  std::chrono::milliseconds acquire_quiet_{0};
  std::chrono::milliseconds max_growth_deferral_{1000};
  uint64_t memory_budget_ = 0;  // 0: the default (80% of the host's memory)
  std::function<std::optional<vm::ProcessMemory>(const Instance&)> measure_memory_;  // empty: smaps_rollup
  std::unique_ptr<pools::PoolManager> pools_;
};

}  // namespace fe::engine::pools::test
