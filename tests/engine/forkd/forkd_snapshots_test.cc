// Snapshots through forkd's API (issue #23): taken, listed, read, forked, rolled back to and deleted,
// every reply valid against openapi.json; a snapshot is no instance on the instance routes, outlives
// its instance and the restart of forkd; each refusal has its status and code.
#include "tests/engine/forkd/forkd_test_fixture.h"

namespace fe::engine::forkd {
namespace {

using test::ApiResponse;
using test::Json;
using test::StatusAndCode;

class ForkdSnapshotsTest : public test::ForkdTest {};

TEST_F(ForkdSnapshotsTest, ASnapshotIsTakenListedForkedRolledBackToAndOutlivesItsInstanceAndARestart) {
  ASSERT_NO_FATAL_FAILURE(StartForkd());
  const Json source = Import("src");
  const ApiResponse taken =
      api().Post("/v1/instances/src/snapshots", Json{{"name", "good"}, {"labels", {{"stage", "one"}}}});
  ASSERT_EQ(taken.status, 201) << taken.body;
  const Json& snapshot = taken.json["snapshot"];
  const std::string id = snapshot["id"];
  EXPECT_EQ(snapshot["name"], "good");
  EXPECT_EQ(snapshot["instance_id"], source["id"]);
  EXPECT_EQ(snapshot["taken_in"], "Standby");
  EXPECT_EQ(snapshot["identity"]["mac"], source["identity"]["mac"]);
  EXPECT_EQ(snapshot["labels"]["stage"], "one");
  EXPECT_EQ(taken.json["mechanism"], "reflink");
  EXPECT_GT(taken.json["phases"]["total_us"].get<int64_t>(), 0);

  EXPECT_EQ(StatusAndCode(api().Post("/v1/instances/src/snapshots", Json{{"name", "good"}})), "409 already_exists");
  EXPECT_EQ(StatusAndCode(api().Post("/v1/instances/src/snapshots", Json{{"name", "x"}, {"nme", 1}})),
            "400 invalid_argument");
  EXPECT_EQ(StatusAndCode(api().Post("/v1/instances/nobody/snapshots", Json{{"name", "x"}})), "404 not_found");
  EXPECT_EQ(StatusAndCode(api().Get("/v1/instances/" + id)), "404 not_found") << "a snapshot is no instance";
  EXPECT_EQ(StatusAndCode(api().Get("/v1/snapshots/" + source["id"].get<std::string>())), "404 not_found");
  EXPECT_EQ(api().Get("/v1/instances").json["instances"].size(), 1u);

  ASSERT_EQ(api().Post("/v1/instances/src/snapshots", Json{{"name", "second"}}).status, 201);
  const ApiResponse listed = api().Get("/v1/snapshots?instance=" + source["id"].get<std::string>() + "&limit=1");
  ASSERT_EQ(listed.status, 200) << listed.body;
  ASSERT_EQ(listed.json["snapshots"].size(), 1u);
  EXPECT_EQ(listed.json["snapshots"][0]["id"], id) << "oldest first";
  const ApiResponse rest =
      api().Get("/v1/snapshots?limit=5&page_token=" + listed.json["next_page_token"].get<std::string>());
  ASSERT_EQ(rest.status, 200) << rest.body;
  EXPECT_EQ(rest.json["snapshots"][0]["name"], "second");
  EXPECT_EQ(api().Get("/v1/snapshots?label=stage=one").json["snapshots"].size(), 1u);
  EXPECT_EQ(api().Get("/v1/snapshots?instance=src").json["snapshots"].size(), 2u) << "a living instance's name";
  EXPECT_EQ(StatusAndCode(api().Get("/v1/snapshots?parent=x")), "400 invalid_argument");

  // Rolled back (no hypervisor runs here: a Standby instance to its Standby snapshot): a new volume,
  // the same identity.
  const ApiResponse rolled = api().Post("/v1/instances/src/restore", Json{{"snapshot", id}});
  ASSERT_EQ(rolled.status, 200) << rolled.body;
  EXPECT_EQ(rolled.json["state"], "Standby");
  EXPECT_NE(rolled.json["storage"]["volume"], source["storage"]["volume"]);
  EXPECT_EQ(rolled.json["identity"]["mac"], source["identity"]["mac"]);
  EXPECT_EQ(StatusAndCode(api().Post("/v1/instances/src/restore", Json{{"snapshot", "s-0000000000000000"}})),
            "404 not_found");

  // The instance goes; the snapshot stays, and forks, also after a restart.
  ASSERT_EQ(api().Delete("/v1/instances/src").status, 204);
  ASSERT_NO_FATAL_FAILURE(StartForkd());
  ASSERT_EQ(api().Get("/v1/snapshots/" + id).status, 200);
  const ApiResponse forked = api().Post("/v1/snapshots/" + id + "/fork", Json{{"name", "try"}, {"count", 3}});
  ASSERT_EQ(forked.status, 201) << forked.body;
  ASSERT_EQ(forked.json["forks"].size(), 3u);
  for (const Json& fork : forked.json["forks"]) {
    EXPECT_EQ(fork["instance"]["parent_id"], id);
    EXPECT_EQ(fork["instance"]["state"], "Standby");
    EXPECT_NE(fork["instance"]["identity"]["mac"], source["identity"]["mac"]);
    EXPECT_EQ(fork["instance"]["labels"]["stage"], "one");
  }
  EXPECT_EQ(StatusAndCode(api().Post("/v1/snapshots/" + id + "/fork", Json{{"name", "x"}, {"from_running", true}})),
            "400 invalid_argument");
  ASSERT_EQ(api().Delete("/v1/snapshots/" + id).status, 204);
  EXPECT_EQ(StatusAndCode(api().Get("/v1/snapshots/" + id)), "404 not_found");
  EXPECT_EQ(StatusAndCode(api().Delete("/v1/snapshots/" + id)), "404 not_found");
  EXPECT_EQ(api().Get("/v1/instances").json["instances"].size(), 3u) << "its forks are not affected";
}

}  // namespace
}  // namespace fe::engine::forkd
