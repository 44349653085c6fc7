// Pools through the API of a real forkd: every /v1/pools endpoint and its errors, acquire handing out
// a normal instance, pools surviving a restart, draining on delete, and 200 concurrent acquires.
// forkd runs with a short --pool-tick-ms and a large --cpu-budget unless a test is about the budget;
// waits for the background refill are bounded generously and assert the state reached, never a time.
#include <signal.h>
#include <sys/wait.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <set>
#include <thread>
#include <vector>

#include "tests/engine/forkd/forkd_invariants.h"
#include "tests/engine/forkd/forkd_test_fixture.h"

namespace fe::engine::forkd::test {
namespace {

const std::vector<std::string> kFastPools{"--pool-tick-ms", "20", "--cpu-budget", "1000", "--busy-threshold", "1"};

class ForkdPoolTest : public ForkdTest {
 protected:
  Json CreatePool(const Json& body) {
    ApiResponse response = api().Post("/v1/pools", body);
    EXPECT_EQ(response.status, 201) << response.body << response.error;
    return response.status == 201 ? response.json : Json();
  }

  Json GetPool(const std::string& name) {
    ApiResponse response = api().Get("/v1/pools/" + name);
    EXPECT_EQ(response.status, 200) << response.body << response.error;
    return response.json;
  }

  // Polls GET /v1/pools/{name} until `done` holds (at most 120 s); the last pool seen.
  Json WaitForPool(const std::string& name, const std::function<bool(const Json&)>& done) {
    Json pool;
    for (auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
         std::chrono::steady_clock::now() < deadline; std::this_thread::sleep_for(std::chrono::milliseconds(20))) {
      ApiResponse response = api().Get("/v1/pools/" + name);
      if (response.status != 200) return response.json;
      pool = response.json;
      if (done(pool)) return pool;
    }
    ADD_FAILURE() << "pool " << name << " did not reach the expected state: " << pool.dump();
    return pool;
  }

  Json WaitUntilFull(const std::string& name, int ready) {
    return WaitForPool(name, [ready](const Json& pool) { return pool["ready"] == ready && pool["refilling"] == 0; });
  }

  // Ids of the instances labelled as members of `pool`.
  std::set<std::string> Members(const std::string& pool) {
    std::set<std::string> ids;
    ApiResponse list = api().Get("/v1/instances");
    EXPECT_EQ(list.status, 200) << list.body;
    for (const Json& instance : list.json["instances"]) {
      if (instance.value("pool", "") == pool) ids.insert(instance["id"].get<std::string>());
    }
    return ids;
  }

  std::string MetricsText() { return api().Get("/v1/metrics").body; }
};

bool HasNoPoolLabel(const Json& instance) {
  return !instance.contains("pool") || instance["pool"] == "" || instance["pool"].is_null();
}

TEST_F(ForkdPoolTest, CreateAnswers201ThenThePoolFillsAndIsListedWithTheBudget) {
  StartForkd(kFastPools);
  Json tmpl = Import("template");
  Json pool = CreatePool(Json{{"name", "web"}, {"template", "template"}, {"min_size", 1}, {"max_size", 3}});
  ASSERT_TRUE(pool.is_object());
  EXPECT_EQ(pool["name"], "web");
  EXPECT_EQ(pool["template"], tmpl["id"]);
  EXPECT_EQ(pool["member_state"], "Standby");
  EXPECT_EQ(pool["min_size"], 1);
  EXPECT_EQ(pool["max_size"], 3);
  EXPECT_EQ(pool["vcpus_per_member"], tmpl["vcpus"]);
  for (const char* field : {"ready", "refilling", "hits", "misses", "throttled"})
    EXPECT_TRUE(pool.contains(field)) << field;

  Json full = WaitUntilFull("web", 3);
  EXPECT_EQ(full["throttled"], false);
  EXPECT_EQ(Members("web").size(), 3u);

  ApiResponse list = api().Get("/v1/pools");
  ASSERT_EQ(list.status, 200) << list.body;
  ASSERT_EQ(list.json["pools"].size(), 1u);
  EXPECT_EQ(list.json["pools"][0]["name"], "web");
  EXPECT_EQ(list.json["cpu_budget_vcpus"], 1000);
  EXPECT_GE(list.json["cpu_used_vcpus"].get<int>(), 3 * tmpl["vcpus"].get<int>());

  std::string metrics = MetricsText();
  EXPECT_NE(metrics.find("forkengine_pool_ready{pool=\"web\"} 3\n"), std::string::npos) << metrics;
  EXPECT_NE(metrics.find("forkengine_pool_hits_total{pool=\"web\"} 0\n"), std::string::npos);
  EXPECT_NE(metrics.find("forkengine_pool_misses_total{pool=\"web\"} 0\n"), std::string::npos);
  EXPECT_NE(metrics.find("forkengine_cpu_budget_vcpus 1000\n"), std::string::npos);
  EXPECT_NE(metrics.find("forkengine_cpu_used_vcpus "), std::string::npos);
  EXPECT_NE(metrics.find("# TYPE forkengine_pool_refill_duration_seconds histogram"), std::string::npos);
  ExpectOnlyCompleteInstances(api(), data_root_);
}

TEST_F(ForkdPoolTest, AcquireHandsOutAReadyMemberAsANormalInstanceUnderItsNewName) {
  StartForkd(kFastPools);
  Json tmpl = Import("template");
  CreatePool(Json{{"name", "web"}, {"template", "template"}, {"max_size", 2}});
  WaitUntilFull("web", 2);
  std::set<std::string> members = Members("web");

  ApiResponse acquired = api().Post("/v1/pools/web/acquire", Json{{"name", "alice"}});
  ASSERT_EQ(acquired.status, 200) << acquired.body;
  EXPECT_EQ(acquired.json["hit"], true);
  EXPECT_GE(acquired.json["latency_us"].get<int64_t>(), 0);
  const Json& instance = acquired.json["instance"];
  EXPECT_EQ(instance["name"], "alice");
  EXPECT_EQ(instance["state"], "Standby");
  EXPECT_EQ(instance["parent_id"], tmpl["id"]);
  EXPECT_TRUE(HasNoPoolLabel(instance)) << instance.dump();
  EXPECT_EQ(members.count(instance["id"].get<std::string>()), 1u) << "not one of the ready members";

  ApiResponse got = api().Get("/v1/instances/alice");
  ASSERT_EQ(got.status, 200) << got.body;
  EXPECT_EQ(got.json["id"], instance["id"]);
  EXPECT_TRUE(HasNoPoolLabel(got.json)) << got.json.dump();
  EXPECT_EQ(Members("web").count(instance["id"].get<std::string>()), 0u);

  Json refilled = WaitUntilFull("web", 2);
  EXPECT_EQ(refilled["hits"], 1);
  EXPECT_EQ(refilled["misses"], 0);
  EXPECT_NE(MetricsText().find("forkengine_pool_acquire_duration_seconds_count{result=\"hit\"} 1\n"),
            std::string::npos);
  // The acquired instance is the caller's: it can be deleted like any other.
  EXPECT_EQ(api().Delete("/v1/instances/alice").status, 204);
}

TEST_F(ForkdPoolTest, AcquireSetsTheAcquiredInstancesTtlAndIdleStandbyAndABadOneIs400NamingIt) {
  StartForkd(kFastPools);
  Import("template");
  CreatePool(Json{{"name", "web"}, {"template", "template"}, {"max_size", 1}});
  WaitUntilFull("web", 1);
  ApiResponse refused = api().Post("/v1/pools/web/acquire", Json{{"name", "alice"}, {"idle_standby_s", -5}});
  EXPECT_EQ(StatusAndCode(refused), "400 invalid_argument") << refused.body;
  EXPECT_NE(refused.body.find("idle_standby_s"), std::string::npos) << refused.body;
  EXPECT_EQ(GetPool("web")["ready"], 1) << "a refused acquire hands nothing out";
  ApiResponse acquired =
      api().Post("/v1/pools/web/acquire", Json{{"name", "alice"}, {"ttl_s", 3600}, {"idle_standby_s", 90}});
  ASSERT_EQ(acquired.status, 200) << acquired.body;
  const Json& lifecycle = acquired.json["instance"]["lifecycle"];
  EXPECT_EQ(lifecycle["idle_standby_s"], 90) << lifecycle.dump();
  ASSERT_TRUE(lifecycle.contains("expires_at")) << lifecycle.dump();
  EXPECT_EQ(api().Get("/v1/instances/alice").json["lifecycle"], lifecycle);
}

TEST_F(ForkdPoolTest, AcquireWithoutANameKeepsTheMembersName) {
  StartForkd(kFastPools);
  Import("template");
  CreatePool(Json{{"name", "web"}, {"template", "template"}, {"max_size", 1}});
  WaitUntilFull("web", 1);
  ApiResponse acquired = api().Post("/v1/pools/web/acquire", std::string());
  ASSERT_EQ(acquired.status, 200) << acquired.body;
  std::string name = acquired.json["instance"]["name"];
  ApiResponse got = api().Get("/v1/instances/" + name);
  ASSERT_EQ(got.status, 200) << got.body;
  EXPECT_EQ(got.json["id"], acquired.json["instance"]["id"]);
}

// A budget of 1 vCPU and a 2-vCPU template: the pool (min 0) is accepted but never gets a member.
TEST_F(ForkdPoolTest, EmptyPoolWithNoWaitIs503AndWithoutItForksOnDemandAsAMiss) {
  StartForkd({"--pool-tick-ms", "20", "--cpu-budget", "1", "--busy-threshold", "1"});
  ApiResponse imported =
      api().Post("/v1/instances",
                 Json{{"name", "template"}, {"hypervisor", "cloud-hypervisor"}, {"import_dir", guest_}, {"vcpus", 2}});
  ASSERT_EQ(imported.status, 201) << imported.body;
  CreatePool(Json{{"name", "web"}, {"template", "template"}, {"min_size", 0}, {"max_size", 1}});

  ApiResponse refused = api().Post("/v1/pools/web/acquire", Json{{"name", "bob"}, {"no_wait", true}});
  EXPECT_EQ(StatusAndCode(refused), "503 unavailable") << refused.body;
  EXPECT_EQ(api().Get("/v1/instances/bob").status, 404);

  ApiResponse forked = api().Post("/v1/pools/web/acquire", Json{{"name", "bob"}});
  ASSERT_EQ(forked.status, 200) << forked.body;
  EXPECT_EQ(forked.json["hit"], false);
  EXPECT_EQ(forked.json["instance"]["name"], "bob");
  EXPECT_EQ(forked.json["instance"]["parent_id"], imported.json["id"]);
  EXPECT_TRUE(HasNoPoolLabel(forked.json["instance"]));
  Json pool = GetPool("web");
  EXPECT_EQ(pool["hits"], 0);
  EXPECT_EQ(pool["misses"], 2);
  EXPECT_EQ(pool["ready"], 0);
  ExpectOnlyCompleteInstances(api(), data_root_);
}

TEST_F(ForkdPoolTest, UnknownPoolIs404OnEveryRoute) {
  StartForkd(kFastPools);
  EXPECT_EQ(StatusAndCode(api().Get("/v1/pools/nope")), "404 not_found");
  EXPECT_EQ(StatusAndCode(api().Delete("/v1/pools/nope")), "404 not_found");
  EXPECT_EQ(StatusAndCode(api().Post("/v1/pools/nope/acquire", Json::object())), "404 not_found");
}

TEST_F(ForkdPoolTest, UnknownTemplateIs404AndTakenPoolNameIs409) {
  StartForkd(kFastPools);
  Import("template");
  EXPECT_EQ(StatusAndCode(api().Post("/v1/pools", Json{{"name", "web"}, {"template", "ghost"}})), "404 not_found");
  CreatePool(Json{{"name", "web"}, {"template", "template"}, {"max_size", 1}});
  EXPECT_EQ(StatusAndCode(api().Post("/v1/pools", Json{{"name", "web"}, {"template", "template"}})),
            "409 already_exists");
}

TEST_F(ForkdPoolTest, StoppedTemplateForStandbyMembersIs409FailedPrecondition) {
  StartForkd(kFastPools);
  ApiResponse imported = api().Post(
      "/v1/instances",
      Json{{"name", "cold"}, {"hypervisor", "cloud-hypervisor"}, {"import_dir", guest_}, {"state", "Stopped"}});
  ASSERT_EQ(imported.status, 201) << imported.body;
  ApiResponse refused =
      api().Post("/v1/pools", Json{{"name", "web"}, {"template", "cold"}, {"member_state", "Standby"}});
  EXPECT_EQ(StatusAndCode(refused), "409 failed_precondition") << refused.body;
  EXPECT_EQ(api().Get("/v1/pools/web").status, 404);
}

TEST_F(ForkdPoolTest, PoolBeyondTheCpuBudgetIs409NamingTheBudget) {
  StartForkd({"--pool-tick-ms", "20", "--cpu-budget", "4", "--busy-threshold", "1"});
  ApiResponse imported =
      api().Post("/v1/instances",
                 Json{{"name", "template"}, {"hypervisor", "cloud-hypervisor"}, {"import_dir", guest_}, {"vcpus", 2}});
  ASSERT_EQ(imported.status, 201) << imported.body;
  ApiResponse refused =
      api().Post("/v1/pools", Json{{"name", "big"}, {"template", "template"}, {"min_size", 3}, {"max_size", 3}});
  EXPECT_EQ(StatusAndCode(refused), "409 failed_precondition") << refused.body;
  std::string message = refused.json.value("message", "");
  EXPECT_NE(message.find("budget"), std::string::npos) << message;
  EXPECT_NE(message.find("4"), std::string::npos) << message;
  EXPECT_EQ(api().Get("/v1/pools/big").status, 404);
}

TEST_F(ForkdPoolTest, BadBodiesAre400NamingTheField) {
  StartForkd(kFastPools);
  Import("template");
  struct Case {
    std::string path, body, named;
  };
  for (const Case& c :
       {Case{"/v1/pools", "{not json", "JSON"}, Case{"/v1/pools", R"({"name":"web"})", "template"},
        Case{"/v1/pools", R"({"name":"web","template":"template","max":3})", "max"},
        Case{"/v1/pools", R"({"name":"web","template":"template","max_size":"3"})", "max_size"},
        Case{"/v1/pools", R"({"name":"web","template":"template","member_state":"Paused"})", "member_state"},
        Case{"/v1/pools", "[1]", "object"}}) {
    ApiResponse response = api().Post(c.path, c.body);
    EXPECT_EQ(StatusAndCode(response), "400 invalid_argument") << c.body;
    EXPECT_NE(response.json.value("message", "").find(c.named), std::string::npos) << c.body << " -> " << response.body;
  }
  CreatePool(Json{{"name", "web"}, {"template", "template"}, {"max_size", 1}});
  for (const Case& c : {Case{"/v1/pools/web/acquire", R"({"no_wait":"yes"})", "no_wait"},
                        Case{"/v1/pools/web/acquire", R"({"nmae":"x"})", "nmae"}}) {
    ApiResponse response = api().Post(c.path, c.body);
    EXPECT_EQ(StatusAndCode(response), "400 invalid_argument") << c.body;
    EXPECT_NE(response.json.value("message", "").find(c.named), std::string::npos) << c.body << " -> " << response.body;
  }
}

TEST_F(ForkdPoolTest, DeleteAnswers204AndRemovesTheReadyMembersButNotAcquiredInstances) {
  StartForkd(kFastPools);
  Json tmpl = Import("template");
  CreatePool(Json{{"name", "web"}, {"template", "template"}, {"max_size", 3}});
  WaitUntilFull("web", 3);
  ApiResponse acquired = api().Post("/v1/pools/web/acquire", Json{{"name", "kept"}});
  ASSERT_EQ(acquired.status, 200) << acquired.body;
  WaitUntilFull("web", 3);

  ApiResponse deleted = api().Delete("/v1/pools/web");
  EXPECT_EQ(deleted.status, 204) << deleted.body;
  EXPECT_EQ(api().Get("/v1/pools/web").status, 404);
  EXPECT_TRUE(Members("web").empty());
  std::set<std::string> ids = ExpectOnlyCompleteInstances(api(), data_root_);
  EXPECT_EQ(ids, (std::set<std::string>{tmpl["id"], acquired.json["instance"]["id"]}));
}

TEST_F(ForkdPoolTest, DeletingAPoolsTemplateIs409NamingThePoolAndKeepsEverything) {
  StartForkd(kFastPools);
  Json tmpl = Import("template");
  CreatePool(Json{{"name", "web"}, {"template", "template"}, {"max_size", 2}});
  WaitUntilFull("web", 2);

  ApiResponse refused = api().Delete("/v1/instances/template");
  EXPECT_EQ(StatusAndCode(refused), "409 failed_precondition") << refused.body;
  EXPECT_NE(refused.json.value("message", "").find("'web'"), std::string::npos) << refused.body;
  EXPECT_EQ(api().Get("/v1/instances/template").status, 200);
  EXPECT_EQ(Members("web").size(), 2u);

  ASSERT_EQ(api().Delete("/v1/pools/web").status, 204);
  EXPECT_EQ(api().Delete("/v1/instances/template").status, 204);
}

TEST_F(ForkdPoolTest, PoolsAndTheirMembersSurviveARestart) {
  StartForkd(kFastPools);
  Import("template");
  CreatePool(Json{{"name", "web"}, {"template", "template"}, {"min_size", 1}, {"max_size", 2}});
  WaitUntilFull("web", 2);
  std::set<std::string> members = Members("web");
  ASSERT_EQ(members.size(), 2u);

  forkd_->Signal(SIGTERM);
  int status = forkd_->Wait();
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status << "\n" << log();
  StartForkd(kFastPools);

  Json pool = WaitUntilFull("web", 2);
  EXPECT_EQ(pool["min_size"], 1);
  EXPECT_EQ(pool["max_size"], 2);
  EXPECT_EQ(Members("web"), members);
  ApiResponse acquired = api().Post("/v1/pools/web/acquire", Json{{"name", "after"}, {"no_wait", true}});
  ASSERT_EQ(acquired.status, 200) << acquired.body;
  EXPECT_EQ(members.count(acquired.json["instance"]["id"].get<std::string>()), 1u);
  WaitUntilFull("web", 2);  // the refill of the acquired member has finished
  ExpectOnlyCompleteInstances(api(), data_root_);
}

// An acquire is durable when answered (the release journal), though the member's metadata is
// rewritten later: forkd killed right after answering keeps every acquired instance under its new
// name and out of the pool, and none of them is handed out again.
TEST_F(ForkdPoolTest, AcquiresAnsweredBeforeAKillMinus9StayAcquiredAfterTheRestart) {
  StartForkd(kFastPools);
  Import("template");
  CreatePool(Json{{"name", "web"}, {"template", "template"}, {"min_size", 0}, {"max_size", 8}});
  WaitUntilFull("web", 8);
  std::map<std::string, std::string> acquired;  // name -> id
  for (int i = 0; i < 8; ++i) {
    ApiResponse response =
        api().Post("/v1/pools/web/acquire", Json{{"name", "k-" + std::to_string(i)}, {"no_wait", true}});
    ASSERT_EQ(response.status, 200) << response.body << response.error;
    acquired["k-" + std::to_string(i)] = response.json["instance"]["id"].get<std::string>();
  }
  forkd_->Signal(SIGKILL);
  forkd_->Wait();
  StartForkd(kFastPools);

  for (const auto& [name, id] : acquired) {
    ApiResponse got = api().Get("/v1/instances/" + name);
    ASSERT_EQ(got.status, 200) << name << ": " << got.body;
    EXPECT_EQ(got.json["id"], id);
    EXPECT_TRUE(HasNoPoolLabel(got.json)) << got.body;
  }
  WaitUntilFull("web", 8);  // refilled with new members
  for (const auto& [name, id] : acquired) EXPECT_EQ(Members("web").count(id), 0u) << name << " is back in the pool";
  ExpectOnlyCompleteInstances(api(), data_root_);
}

TEST_F(ForkdPoolTest, TwoHundredConcurrentAcquiresFromAPoolOfTwentyGiveDistinctInstancesAndLeakNothing) {
  StartForkd(kFastPools);
  Json tmpl = Import("template");
  CreatePool(Json{{"name", "web"}, {"template", "template"}, {"min_size", 20}, {"max_size", 20}});
  WaitUntilFull("web", 20);

  constexpr int kAcquires = 200;
  std::vector<ApiResponse> responses(kAcquires);
  std::vector<std::thread> clients;
  std::atomic<bool> go{false};
  for (int i = 0; i < kAcquires; ++i) {
    clients.emplace_back([&, i] {
      while (!go) std::this_thread::yield();
      responses[i] = api().Post("/v1/pools/web/acquire", Json{{"name", "c-" + std::to_string(i)}});
    });
  }
  go = true;
  for (std::thread& client : clients) client.join();

  std::set<std::string> ids;
  int hits = 0;
  for (int i = 0; i < kAcquires; ++i) {
    ASSERT_EQ(responses[i].status, 200) << i << ": " << responses[i].body << responses[i].error;
    const Json& instance = responses[i].json["instance"];
    EXPECT_EQ(instance["name"], "c-" + std::to_string(i));
    EXPECT_EQ(instance["parent_id"], tmpl["id"]);
    EXPECT_TRUE(HasNoPoolLabel(instance));
    ids.insert(instance["id"].get<std::string>());
    hits += responses[i].json["hit"].get<bool>() ? 1 : 0;
  }
  EXPECT_EQ(ids.size(), size_t{kAcquires}) << "an instance was handed out twice";
  EXPECT_GE(hits, 1);

  Json pool = WaitUntilFull("web", 20);
  EXPECT_EQ(pool["hits"].get<int>() + pool["misses"].get<int>(), kAcquires);
  EXPECT_EQ(pool["hits"].get<int>(), hits);
  std::set<std::string> members = Members("web");
  for (const std::string& id : members) EXPECT_EQ(ids.count(id), 0u) << id << " is both acquired and a member";
  std::set<std::string> listed = ExpectOnlyCompleteInstances(api(), data_root_);  // leases == instances
  EXPECT_EQ(listed.size(), 1 + size_t{kAcquires} + members.size());
  for (int i = 0; i < kAcquires; ++i) {
    ApiResponse got = api().Get("/v1/instances/c-" + std::to_string(i));
    EXPECT_EQ(got.json["id"], responses[i].json["instance"]["id"]) << i;
  }
}

}  // namespace
}  // namespace fe::engine::forkd::test
