#include "engine/forkctl/pool_commands.h"

#include <gtest/gtest.h>

namespace fe::engine::forkctl {
namespace {

using nlohmann::json;

json MakePool(const std::string& name, int ready, int hits, bool throttled = false) {
  return {{"name", name},
          {"template", "i-0123456789abcdef"},
          {"member_state", "Standby"},
          {"min_size", 2},
          {"max_size", 10},
          {"vcpus_per_member", 2},
          {"ready", ready},
          {"refilling", 1},
          {"hits", hits},
          {"misses", 3},
          {"throttled", throttled},
          {"memory", "shared"},
          {"memory_per_member_bytes", 48u << 20},
          {"memory_used_bytes", 432u << 20},
          {"memory_shared_bytes", 2000u << 20}};
}

TEST(PoolsTableTest, ListsOneRowPerPoolThenTheCpuBudget) {
  json reply = {{"pools", json::array({MakePool("web", 9, 120), MakePool("batch", 0, 5, true)})},
                {"cpu_budget_vcpus", 8},
                {"cpu_used_vcpus", 6},
                {"memory_budget_bytes", 8ull << 30},
                {"memory_used_bytes", 1536ull << 20}};
  EXPECT_EQ(PoolsTable(reply),
            "NAME   TEMPLATE            MEMBERS  MIN  MAX  READY  REFILLING  HITS  MISSES  VCPUS  THROTTLED\n"
            "web    i-0123456789abcdef  Standby    2   10      9          1   120       3      2  no\n"
            "batch  i-0123456789abcdef  Standby    2   10      0          1     5       3      2  yes\n"
            "cpu budget: 6 of 8 vCPUs in use\n"
            "memory budget: 1.50 GiB of 8.00 GiB in use\n");
}

TEST(PoolsTableTest, MissingOrMistypedFieldsRenderAsDashes) {
  EXPECT_EQ(PoolsTable(json{{"pools", json::array({json{{"name", "x"}, {"ready", "many"}}})}}),
            "NAME  TEMPLATE  MEMBERS  MIN  MAX  READY  REFILLING  HITS  MISSES  VCPUS  THROTTLED\n"
            "x     -         -          -    -   many          -     -       -      -  -\n"
            "cpu budget: - of - vCPUs in use\n"
            "memory budget: - of - in use\n");
  EXPECT_EQ(PoolsTable(json("nonsense")),
            "NAME  TEMPLATE  MEMBERS  MIN  MAX  READY  REFILLING  HITS  MISSES  VCPUS  THROTTLED\n"
            "cpu budget: - of - vCPUs in use\n"
            "memory budget: - of - in use\n");
}

TEST(PoolDetailsTest, PrintsOneLinePerField) {
  EXPECT_EQ(PoolDetails(MakePool("web", 9, 120)),
            "web\n"
            "  template: i-0123456789abcdef\n"
            "  member_state: Standby\n"
            "  memory: shared\n"
            "  min_size: 2\n"
            "  max_size: 10\n"
            "  vcpus_per_member: 2\n"
            "  ready: 9\n"
            "  refilling: 1\n"
            "  hits: 120\n"
            "  misses: 3\n"
            "  refills: -\n"
            "  refill_failures: -\n"
            "  last_refill_error: -\n"
            "  throttled: no\n"
            "  memory_per_member: 48.0 MiB\n"
            "  memory_used: 432.0 MiB\n"
            "  memory_shared: 1.95 GiB\n");
}

TEST(AcquireSummaryTest, SaysWhetherTheInstanceCameFromThePoolAndHowLongForkdTook) {
  json instance = {{"id", "i-1"}, {"name", "alice"}, {"state", "Standby"}};
  EXPECT_EQ(AcquireSummary(json{{"instance", instance}, {"hit", true}, {"latency_us", 182}}),
            "acquired alice (i-1): Standby, hit, 0.182 ms in forkd\n");
  EXPECT_EQ(AcquireSummary(json{{"instance", instance}, {"hit", false}, {"latency_us", 4321}}),
            "acquired alice (i-1): Standby, miss (forked on demand), 4.321 ms in forkd\n");
  EXPECT_EQ(AcquireSummary(json::object()), "acquired - (-): -, -, -\n");
}

TEST(PoolPathTest, EncodesTheNameAsOneSegment) {
  EXPECT_EQ(PoolPath("web"), "/v1/pools/web");
  EXPECT_EQ(PoolPath("web", "/acquire"), "/v1/pools/web/acquire");
  EXPECT_EQ(PoolPath("a/b"), "/v1/pools/a%2Fb");
}

}  // namespace
}  // namespace fe::engine::forkctl
