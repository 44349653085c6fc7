// Lifecycle policies through forkd (issue #23): an instance created with a TTL is deleted by forkd's
// own keeper once it expires; PATCH /v1/instances/{id} sets and clears the TTL, idle standby and
// labels, and refuses what is wrong with 400 naming the field. Replies are validated against
// openapi.json. (The keeper's logic under a test clock: tests/engine/lifecycle_keeper_test.cc.)
#include <chrono>
#include <thread>

#include "tests/engine/forkd/forkd_test_fixture.h"

namespace fe::engine::forkd {
namespace {

using test::ApiResponse;
using test::Json;
using test::StatusAndCode;

class ForkdLifecycleTest : public test::ForkdTest {};

TEST_F(ForkdLifecycleTest, AnInstanceWithATtlIsDeletedByForkdWhenItExpiresAndPatchMovesOrClearsIt) {
  ASSERT_NO_FATAL_FAILURE(StartForkd());
  const ApiResponse brief =
      api().Post("/v1/instances",
                 Json{{"name", "brief"}, {"hypervisor", "cloud-hypervisor"}, {"import_dir", guest_}, {"ttl_s", 1}});
  ASSERT_EQ(brief.status, 201) << brief.body;
  EXPECT_TRUE(brief.json["lifecycle"]["expires_at"].is_string());
  const Json kept = Import("kept");
  EXPECT_TRUE(kept["lifecycle"]["expires_at"].is_null());
  const ApiResponse forked =
      api().Post("/v1/instances/kept/fork", Json{{"name", "f"}, {"ttl_s", 3600}, {"idle_standby_s", 600}});
  ASSERT_EQ(forked.status, 201) << forked.body;
  EXPECT_EQ(forked.json["forks"][0]["instance"]["lifecycle"]["idle_standby_s"], 600);

  bool gone = false;
  for (int attempt = 0; attempt < 100 && !gone; ++attempt) {
    gone = api().Get("/v1/instances/brief").status == 404;
    if (!gone) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_TRUE(gone) << "forkd deletes an instance once its TTL ran out\n" << log();
  EXPECT_TRUE(LogEventuallyContains("it expired at")) << log();

  const ApiResponse patched = api().Patch(
      "/v1/instances/f", Json{{"ttl_s", nullptr}, {"idle_standby_s", 0}, {"labels", {{"team", "a"}, {"x", nullptr}}}});
  ASSERT_EQ(patched.status, 200) << patched.body;
  EXPECT_TRUE(patched.json["lifecycle"]["expires_at"].is_null());
  EXPECT_EQ(patched.json["lifecycle"]["idle_standby_s"], 0);
  EXPECT_EQ(patched.json["labels"], (Json{{"team", "a"}}));
  EXPECT_EQ(StatusAndCode(api().Patch("/v1/instances/f", Json{{"ttl_s", 0}})), "400 invalid_argument");
  EXPECT_EQ(StatusAndCode(api().Patch("/v1/instances/f", Json{{"idle", 1}})), "400 invalid_argument");
  EXPECT_EQ(StatusAndCode(api().Patch("/v1/instances/f", Json{{"labels", {{"k", 1}}}})), "400 invalid_argument");
  EXPECT_EQ(StatusAndCode(api().Patch("/v1/instances/nobody", Json{{"ttl_s", 5}})), "404 not_found");
  EXPECT_EQ(StatusAndCode(api().Post("/v1/instances/kept/fork", Json{{"name", "g"}, {"ttl_s", -1}})),
            "400 invalid_argument");
}

}  // namespace
}  // namespace fe::engine::forkd
