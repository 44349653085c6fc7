// GET /v1/instances at scale (issue #23): over a thousand forks made by the API with labels, the
// listing filters by label, state, parent and ancestor and pages in creation order, every page a
// valid reply; a page token outlives a restart of forkd; a bad query parameter is a 400 naming it.
#include <set>

#include "tests/engine/forkd/forkd_test_fixture.h"

namespace fe::engine::forkd {
namespace {

using test::ApiResponse;
using test::Json;
using test::StatusAndCode;

constexpr int kFanOuts = 16;
constexpr int kPerFanOut = 64;  // 1,024 forks

class ForkdListingTest : public test::ForkdTest {
 protected:
  // Every page of GET /v1/instances?<query>, following next_page_token; each page at most `limit`.
  std::vector<Json> AllPages(const std::string& query, size_t limit) {
    std::vector<Json> instances;
    std::string token;
    for (int pages = 0; pages < 2000; ++pages) {
      const ApiResponse page =
          api().Get("/v1/instances?" + query + (query.empty() ? "" : "&") + "limit=" + std::to_string(limit) +
                    (token.empty() ? "" : "&page_token=" + token));
      EXPECT_EQ(page.status, 200) << page.body;
      if (page.status != 200) break;
      EXPECT_LE(page.json["instances"].size(), limit);
      for (const Json& instance : page.json["instances"]) instances.push_back(instance);
      if (!page.json.contains("next_page_token")) return instances;
      token = page.json["next_page_token"];
    }
    ADD_FAILURE() << "the pages never ended";
    return instances;
  }
};

TEST_F(ForkdListingTest, AThousandForksAreFilteredByLabelStateParentAndAncestorAndPagedInCreationOrder) {
  ASSERT_NO_FATAL_FAILURE(StartForkd());
  const ApiResponse base = api().Post("/v1/instances", Json{{"name", "base"},
                                                            {"hypervisor", "cloud-hypervisor"},
                                                            {"import_dir", guest_},
                                                            {"labels", {{"team", "agents"}}}});
  ASSERT_EQ(base.status, 201) << base.body;
  const std::string base_id = base.json["id"];
  for (int batch = 0; batch < kFanOuts; ++batch) {
    const ApiResponse forked = api().Post(
        "/v1/instances/base/fork",
        Json{{"name", "b" + std::to_string(batch)},
             {"count", kPerFanOut},
             {"labels", {{"batch", "b" + std::to_string(batch)}, {"parity", batch % 2 == 0 ? "even" : "odd"}}}});
    ASSERT_EQ(forked.status, 201) << forked.body;
    EXPECT_EQ(forked.json["forks"][0]["instance"]["labels"]["team"], "agents") << "inherited";
  }
  const ApiResponse one = api().Post("/v1/instances/b3-1/fork", Json{{"name", "deep"}});
  ASSERT_EQ(one.status, 201) << one.body;
  ASSERT_EQ(api().Delete("/v1/instances/b3-1").status, 204);

  // Unfiltered, in pages of 100: every instance once, oldest first.
  const std::vector<Json> all = AllPages("", 100);
  ASSERT_EQ(all.size(), size_t{1 + kFanOuts * kPerFanOut});  // base, the forks less b3-1, and deep
  std::set<std::string> ids;
  for (size_t i = 0; i < all.size(); ++i) {
    EXPECT_TRUE(ids.insert(all[i]["id"].get<std::string>()).second) << all[i]["name"] << " twice";
    if (i > 0) {
      EXPECT_LE(all[i - 1]["created_at"].get<std::string>(), all[i]["created_at"].get<std::string>());
    }
  }
  EXPECT_EQ(all.front()["name"], "base");
  EXPECT_EQ(all.back()["name"], "deep");

  // One label, and two at once ('=' inside a value may come percent-encoded).
  const std::vector<Json> odd = AllPages("label=parity=odd", 77);
  EXPECT_EQ(odd.size(), size_t{kFanOuts / 2 * kPerFanOut});
  for (const Json& instance : odd) EXPECT_EQ(instance["labels"]["parity"], "odd") << instance["name"];
  EXPECT_EQ(AllPages("label=parity%3Dodd&label=batch%3Db3", 10).size(), size_t{kPerFanOut});  // deep too
  EXPECT_EQ(AllPages("label=batch", 1000).size(), size_t{kFanOuts * kPerFanOut});
  EXPECT_TRUE(AllPages("label=batch=nope", 10).empty());

  // Parent (direct forks) and ancestor (kept when b3-1 was deleted); state.
  EXPECT_EQ(AllPages("parent=" + base_id, 1000).size(), size_t{kFanOuts * kPerFanOut - 1});
  EXPECT_EQ(AllPages("parent=base", 1000).size(), size_t{kFanOuts * kPerFanOut - 1}) << "a living one's name";
  EXPECT_EQ(AllPages("ancestor=base&label=batch=b3", 1000).size(), size_t{kPerFanOut});
  EXPECT_TRUE(AllPages("parent=nobody", 1000).empty());
  const std::vector<Json> descendants = AllPages("ancestor=" + base_id + "&label=batch=b3", 1000);
  ASSERT_EQ(descendants.size(), size_t{kPerFanOut});
  EXPECT_EQ(descendants.back()["name"], "deep");
  EXPECT_EQ(descendants.back()["ancestors"].size(), 2u);
  EXPECT_EQ(descendants.back()["ancestors"][1]["name"], "b3-1");
  EXPECT_EQ(AllPages("state=Standby&label=parity=odd", 1000).size(), odd.size());
  EXPECT_TRUE(AllPages("state=Running", 1000).empty());

  // A token from before a restart goes on where it stopped.
  const ApiResponse first = api().Get("/v1/instances?label=parity=odd&limit=300");
  ASSERT_EQ(first.status, 200);
  ASSERT_NO_FATAL_FAILURE(StartForkd());
  const ApiResponse rest = api().Get("/v1/instances?label=parity=odd&limit=1000&page_token=" +
                                     first.json["next_page_token"].get<std::string>());
  ASSERT_EQ(rest.status, 200) << rest.body;
  ASSERT_EQ(rest.json["instances"].size(), odd.size() - 300);
  EXPECT_EQ(rest.json["instances"][0]["id"], odd[300]["id"]);
  EXPECT_FALSE(rest.json.contains("next_page_token"));
}

TEST_F(ForkdListingTest, ABadQueryParameterOrLabelIsA400NamingIt) {
  ASSERT_NO_FATAL_FAILURE(StartForkd());
  for (const auto& [query, named] : std::vector<std::pair<std::string, std::string>>{{"label=-x", "label"},
                                                                                     {"label==v", "label"},
                                                                                     {"limit=0", "limit"},
                                                                                     {"limit=1001", "limit"},
                                                                                     {"limit=ten", "limit"},
                                                                                     {"page_token=zz", "page_token"},
                                                                                     {"state=Paused", "state"},
                                                                                     {"sort=name", "sort"}}) {
    const ApiResponse listed = api().Get("/v1/instances?" + query);
    EXPECT_EQ(StatusAndCode(listed), "400 invalid_argument") << query;
    EXPECT_NE(listed.json.value("message", "").find(named), std::string::npos) << query << ": " << listed.body;
  }
  const ApiResponse created = api().Post(
      "/v1/instances", Json{{"name", "x"}, {"hypervisor", "cloud-hypervisor"}, {"labels", {{"bad key", "v"}}}});
  EXPECT_EQ(StatusAndCode(created), "400 invalid_argument");
  EXPECT_NE(created.json.value("message", "").find("labels.bad key"), std::string::npos) << created.body;
  const ApiResponse typed =
      api().Post("/v1/instances", Json{{"name", "x"}, {"hypervisor", "cloud-hypervisor"}, {"labels", {{"k", 1}}}});
  EXPECT_EQ(StatusAndCode(typed), "400 invalid_argument");
  EXPECT_EQ(api().Get("/v1/instances").json["instances"].size(), 0u) << "nothing was made";
}

}  // namespace
}  // namespace fe::engine::forkd
