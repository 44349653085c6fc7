// forkd's API against a real forkd process: every route's answer and every error code from a real
// request.
#include <cstdlib>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <sys/stat.h>
#include <netinet/in.h>
#include <unistd.h>

#include <cstring>
#include <set>

#include <httplib.h>

#include "storage/loop/loop_filesystem.h"
#include "tests/engine/forkd/forkd_invariants.h"
#include "tests/engine/forkd/forkd_test_fixture.h"

namespace fe::engine::forkd::test {
namespace {

class ForkdApiTest : public ForkdTest {};

TEST_F(ForkdApiTest, SocketIsMode0600InsideADirectoryOnlyRootEnters) {
  StartForkd();
  struct stat socket_stat {
  }, dir_stat{};
  ASSERT_EQ(::lstat(socket_.c_str(), &socket_stat), 0);
  EXPECT_TRUE(S_ISSOCK(socket_stat.st_mode));
  EXPECT_EQ(socket_stat.st_mode & 07777, 0600u);
  ASSERT_EQ(::stat(temp_->Sub("run").c_str(), &dir_stat), 0);
  EXPECT_EQ(dir_stat.st_mode & 07777, 0700u);
  ApiResponse health = api().Get("/v1/healthz");
  EXPECT_EQ(health.status, 200);
  EXPECT_EQ(health.json, (Json{{"status", "ok"}, {"instances", 0}, {"quarantined", Json::array()}}));
}

TEST_F(ForkdApiTest, ImportedGuestIsStandbyAndFoundByIdAndByName) {
  StartForkd();
  Json created = Import("web");
  ASSERT_TRUE(created.is_object());
  EXPECT_EQ(created["name"], "web");
  EXPECT_EQ(created["state"], "Standby");
  EXPECT_EQ(created["hypervisor"], "cloud-hypervisor");
  std::string id = created["id"];
  // One instance's view adds what its process holds in memory: nothing, it has none.
  Json expected = created;
  expected["memory"]["resident"] = nullptr;
  EXPECT_EQ(api().Get("/v1/instances/" + id).json, expected);
  EXPECT_EQ(api().Get("/v1/instances/web").json, expected);
  ApiResponse list = api().Get("/v1/instances");
  ASSERT_EQ(list.status, 200);
  ASSERT_EQ(list.json["instances"].size(), 1u);
  EXPECT_EQ(list.json["instances"][0], created);
  EXPECT_EQ(api().Get("/v1/healthz").json.value("instances", -1), 1);
}

TEST_F(ForkdApiTest, ForkAnswers201WithPhasesAndAFreshIdentity) {
  StartForkd();
  Json source = Import("web");
  ApiResponse fork = api().Post("/v1/instances/web/fork", Json{{"name", "web-copy"}});
  ASSERT_EQ(fork.status, 201) << fork.body;
  ASSERT_EQ(fork.json["forks"].size(), 1u);
  const Json& made = fork.json["forks"][0];
  EXPECT_EQ(made["instance"]["name"], "web-copy");
  EXPECT_EQ(made["instance"]["parent_id"], source["id"]);
  EXPECT_EQ(made["instance"]["state"], "Standby");
  EXPECT_NE(made["instance"]["identity"]["ipv4"], source["identity"]["ipv4"]);
  EXPECT_NE(made["instance"]["identity"]["mac"], source["identity"]["mac"]);
  for (const char* phase :
       {"lock_wait_us", "source_standby_us", "clone_us", "rewrite_us", "metadata_us", "restore_us", "total_us"}) {
    EXPECT_TRUE(made["phases"].contains(phase)) << phase;
  }
  EXPECT_GT(made["phases"]["total_us"].get<int64_t>(), 0);
  EXPECT_FALSE(made["mechanism"].get<std::string>().empty());
  EXPECT_EQ(api().Get("/v1/instances/web-copy").status, 200);
  EXPECT_TRUE(LogEventuallyContains("request method=POST path=/v1/instances/web/fork status=201 duration_ms="))
      << log();
  EXPECT_TRUE(LogEventuallyContains("fork source=" + source["id"].get<std::string>() +
                                    " fork=" + made["instance"]["id"].get<std::string>()))
      << log();
}

TEST_F(ForkdApiTest, DeleteAnswers204AndTheInstanceIsGone) {
  StartForkd();
  Import("web");
  ApiResponse deleted = api().Delete("/v1/instances/web");
  EXPECT_EQ(deleted.status, 204) << deleted.body;
  EXPECT_TRUE(deleted.body.empty());
  EXPECT_EQ(StatusAndCode(api().Get("/v1/instances/web")), "404 not_found");
}

TEST_F(ForkdApiTest, StorageNamesTheBackendAndCountsVolumes) {
  StartForkd();
  Import("web");
  ApiResponse storage = api().Get("/v1/storage");
  ASSERT_EQ(storage.status, 200) << storage.body;
  EXPECT_EQ(storage.json["backend"], "reflink");
  EXPECT_EQ(storage.json["volumes"], 1);
  EXPECT_GT(storage.json["filesystem_bytes"].get<uint64_t>(), 0u);
  EXPECT_FALSE(storage.json["selection_reason"].get<std::string>().empty());
  EXPECT_TRUE(storage.json["pool"].is_null()) << "reflink volumes draw from the root's filesystem";
  // forkd timed a reflink and a copy of the calibration trees at start, and left nothing of them.
  std::set<std::string> mechanisms;
  for (const Json& clone : storage.json["measured_costs"]["clones"]) mechanisms.insert(clone["mechanism"]);
  EXPECT_EQ(mechanisms, (std::set<std::string>{"reflink", "copy"})) << storage.body;
  EXPECT_TRUE(storage.json["measured_costs"]["btrfs_crossover_entries"].is_null());
  EXPECT_EQ(::access((storage.json["root"].get<std::string>() + "/.forkengine-calibration").c_str(), F_OK), -1);
}

TEST_F(ForkdApiTest, MalformedJsonIs400InvalidArgument) {
  StartForkd();
  EXPECT_EQ(StatusAndCode(api().Post("/v1/instances", std::string("{\"name\": "))), "400 invalid_argument");
  EXPECT_EQ(StatusAndCode(api().Post("/v1/instances", std::string("[1,2]"))), "400 invalid_argument");
}

TEST_F(ForkdApiTest, UnknownFieldIs400NamingTheField) {
  StartForkd();
  Import("web");
  ApiResponse create =
      api().Post("/v1/instances", Json{{"name", "x"}, {"hypervisor", "cloud-hypervisor"}, {"colour", "blue"}});
  EXPECT_EQ(StatusAndCode(create), "400 invalid_argument");
  EXPECT_NE(create.json["message"].get<std::string>().find("colour"), std::string::npos) << create.body;
  ApiResponse fork = api().Post("/v1/instances/web/fork", Json{{"name", "x"}, {"from_runing", true}});
  EXPECT_EQ(StatusAndCode(fork), "400 invalid_argument");
  EXPECT_NE(fork.json["message"].get<std::string>().find("from_runing"), std::string::npos) << fork.body;
  EXPECT_EQ(StatusAndCode(api().Post("/v1/instances/web/start", Json{{"force", true}})), "400 invalid_argument");
}

TEST_F(ForkdApiTest, WrongFieldTypeIs400NamingTheField) {
  StartForkd();
  Import("web");
  ApiResponse fork = api().Post("/v1/instances/web/fork", Json{{"name", "x"}, {"count", "3"}});
  EXPECT_EQ(StatusAndCode(fork), "400 invalid_argument");
  EXPECT_NE(fork.json["message"].get<std::string>().find("count"), std::string::npos) << fork.body;
  ApiResponse create = api().Post("/v1/instances", Json{{"name", 7}, {"hypervisor", "cloud-hypervisor"}});
  EXPECT_EQ(StatusAndCode(create), "400 invalid_argument");
  EXPECT_NE(create.json["message"].get<std::string>().find("name"), std::string::npos) << create.body;
  EXPECT_EQ(StatusAndCode(api().Post("/v1/instances/web/fork", Json{{"name", "x"}, {"target_state", "Paused"}})),
            "400 invalid_argument");
}

TEST_F(ForkdApiTest, BadNameIs400InvalidArgument) {
  StartForkd();
  Import("web");
  EXPECT_EQ(
      StatusAndCode(api().Post("/v1/instances", Json{{"name", "Not_A_Label"}, {"hypervisor", "cloud-hypervisor"}})),
      "400 invalid_argument");
  EXPECT_EQ(StatusAndCode(api().Post("/v1/instances/web/fork", Json{{"name", "-dash-first"}})), "400 invalid_argument");
  EXPECT_EQ(StatusAndCode(api().Post("/v1/instances", Json{{"hypervisor", "cloud-hypervisor"}})),
            "400 invalid_argument");
}

TEST_F(ForkdApiTest, BadCountIs400InvalidArgument) {
  StartForkd();
  Import("web");
  EXPECT_EQ(StatusAndCode(api().Post("/v1/instances/web/fork", Json{{"name", "x"}, {"count", 0}})),
            "400 invalid_argument");
  EXPECT_EQ(StatusAndCode(api().Post("/v1/instances/web/fork", Json{{"name", "x"}, {"count", 65}})),
            "400 invalid_argument");
  EXPECT_EQ(api().Get("/v1/instances").json["instances"].size(), 1u);
}

TEST_F(ForkdApiTest, UnknownInstanceIs404NotFound) {
  StartForkd();
  EXPECT_EQ(StatusAndCode(api().Get("/v1/instances/nobody")), "404 not_found");
  EXPECT_EQ(StatusAndCode(api().Delete("/v1/instances/nobody")), "404 not_found");
  EXPECT_EQ(StatusAndCode(api().Post("/v1/instances/nobody/fork", Json{{"name", "x"}})), "404 not_found");
  EXPECT_EQ(StatusAndCode(api().Post("/v1/instances/nobody/stop", std::string())), "404 not_found");
}

TEST_F(ForkdApiTest, UnknownRouteIs404NotFound) {
  StartForkd();
  EXPECT_EQ(StatusAndCode(api().Get("/v1/nothing")), "404 not_found");
  EXPECT_EQ(StatusAndCode(api().Get("/v2/instances")), "404 not_found");
  EXPECT_EQ(StatusAndCode(api().Post("/v1/instances/web/reboot", std::string("{}"))), "404 not_found");
}

TEST_F(ForkdApiTest, KnownPathWithAnotherMethodIs405NamingTheAllowedOnes) {
  StartForkd();
  ApiResponse deleted = api().Delete("/v1/instances");
  EXPECT_EQ(StatusAndCode(deleted), "405 method_not_allowed");
  EXPECT_NE(deleted.body.find("allowed: GET, POST"), std::string::npos) << deleted.body;
  EXPECT_EQ(StatusAndCode(api().Post("/v1/instances/web/reboot", std::string("{}"))), "404 not_found");
}

TEST_F(ForkdApiTest, TakenNameIs409AlreadyExists) {
  StartForkd();
  Import("web");
  ApiResponse again =
      api().Post("/v1/instances", Json{{"name", "web"}, {"hypervisor", "cloud-hypervisor"}, {"import_dir", guest_}});
  EXPECT_EQ(StatusAndCode(again), "409 already_exists");
  EXPECT_EQ(StatusAndCode(api().Post("/v1/instances/web/fork", Json{{"name", "web"}})), "409 already_exists");
}

TEST_F(ForkdApiTest, RestoreOfAStoppedInstanceIs409FailedPrecondition) {
  StartForkd();
  ApiResponse empty = api().Post("/v1/instances", Json{{"name", "blank"}, {"hypervisor", "cloud-hypervisor"}});
  ASSERT_EQ(empty.status, 201) << empty.body;
  ASSERT_EQ(empty.json["state"], "Stopped");
  EXPECT_EQ(StatusAndCode(api().Post("/v1/instances/blank/restore", std::string())), "409 failed_precondition");
  EXPECT_EQ(StatusAndCode(api().Post("/v1/instances/blank/stop", std::string("{}"))), "409 failed_precondition");
}

TEST_F(ForkdApiTest, UnsupportedHypervisorIs422Unsupported) {
  StartForkd();
  ApiResponse vz = api().Post("/v1/instances", Json{{"name", "mac"}, {"hypervisor", "vz"}});
  EXPECT_EQ(StatusAndCode(vz), "422 unsupported");
  EXPECT_NE(vz.json["message"].get<std::string>().find("vz"), std::string::npos) << vz.body;
}

TEST_F(ForkdApiTest, AHypervisorBinaryThisHostLacksIs422NamingItAndHowToInstallIt) {
  if (std::system("command -v cloud-hypervisor >/dev/null 2>&1") == 0) GTEST_SKIP() << "cloud-hypervisor is installed";
  StartForkd();
  Import("web");
  ApiResponse restore = api().Post("/v1/instances/web/restore", std::string());
  EXPECT_EQ(StatusAndCode(restore), "422 unsupported") << restore.body;
  const std::string message = restore.json.value("message", "");
  EXPECT_NE(message.find("'cloud-hypervisor'"), std::string::npos) << message;
  EXPECT_NE(message.find("install Cloud Hypervisor"), std::string::npos) << message;
  EXPECT_EQ(api().Get("/v1/instances/web").json["state"], "Standby");
}

TEST_F(ForkdApiTest, AnExhaustedSubnetIs409InsufficientResourcesNamingItAndLeavesNothing) {
  StartForkd({"--subnet", "10.77.0.0/30"});  // gateway .1: one address to lease
  Import("web");
  ApiResponse refused = api().Post("/v1/instances/web/fork", Json{{"name", "one"}});
  EXPECT_EQ(StatusAndCode(refused), "409 insufficient_resources") << refused.body;
  EXPECT_NE(refused.json.value("message", "").find("10.77.0.0/30"), std::string::npos) << refused.body;
  EXPECT_EQ(api().Get("/v1/instances/one").status, 404);
  EXPECT_EQ(ExpectOnlyCompleteInstances(api(), data_root_).size(), 1u);
}

TEST_F(ForkdApiTest, CreatingIsNotAStateToAskForAndTheMessageListsOnlyThoseThatAre) {
  StartForkd();
  ASSERT_EQ(api().Post("/v1/instances", Json{{"name", "cold"}, {"hypervisor", "cloud-hypervisor"}}).status, 201);
  ApiResponse creating = api().Post("/v1/instances/cold/fork", Json{{"name", "x"}, {"target_state", "Creating"}});
  EXPECT_EQ(StatusAndCode(creating), "400 invalid_argument") << creating.body;
  const std::string message = creating.json.value("message", "");
  EXPECT_NE(message.find("target_state"), std::string::npos) << message;
  EXPECT_NE(message.find("expected Stopped, Standby or Running"), std::string::npos) << message;
}

TEST_F(ForkdApiTest, AStoppedSourceForkedIntoStandbyIsBootedAndARefusedBootLeavesNothing) {
  if (std::system("command -v cloud-hypervisor >/dev/null 2>&1") == 0) GTEST_SKIP() << "cloud-hypervisor is installed";
  StartForkd();
  ApiResponse imported = api().Post(
      "/v1/instances",
      Json{{"name", "cold"}, {"hypervisor", "cloud-hypervisor"}, {"import_dir", guest_}, {"state", "Stopped"}});
  ASSERT_EQ(imported.status, 201) << imported.body;
  // Booted (not refused as before): here the host cannot run the hypervisor, so the boot fails.
  ApiResponse standby = api().Post("/v1/instances/cold/fork", Json{{"name", "warm"}, {"target_state", "Standby"}});
  EXPECT_EQ(StatusAndCode(standby), "422 unsupported") << standby.body;
  EXPECT_EQ(api().Get("/v1/instances/warm").status, 404);
  EXPECT_EQ(ExpectOnlyCompleteInstances(api(), data_root_).size(), 1u);
}

TEST_F(ForkdApiTest, UsageCountsWhatAForkSharesWithItsTemplateByFiemap) {
  StartForkd();
  Import("web");
  ApiResponse alone = api().Get("/v1/instances/web/usage");
  ASSERT_EQ(alone.status, 200) << alone.body;
  EXPECT_EQ(alone.json["method"], "fiemap") << alone.body;  // the data root is on XFS with reflink
  EXPECT_GT(alone.json["allocated_bytes"].get<uint64_t>(), 0u) << alone.body;
  // An import is a reflink clone too: it shares its data with the directory it was imported from.
  EXPECT_LE(alone.json["shared_bytes"].get<uint64_t>(), alone.json["allocated_bytes"].get<uint64_t>());
  ASSERT_EQ(api().Post("/v1/instances/web/fork", Json{{"name", "child"}}).status, 201);

  ApiResponse child = api().Get("/v1/instances/child/usage");
  ASSERT_EQ(child.status, 200) << child.body;
  const uint64_t allocated = child.json["allocated_bytes"].get<uint64_t>();
  const uint64_t shared = child.json["shared_bytes"].get<uint64_t>();
  EXPECT_GT(shared, 0u) << child.body;
  EXPECT_LE(shared, allocated) << child.body;
  EXPECT_EQ(child.json["exclusive_bytes"].get<uint64_t>(), allocated - shared) << child.body;
  EXPECT_GE(child.json["logical_bytes"].get<uint64_t>(), allocated) << child.body;
  // The template now shares its data with the fork too.
  EXPECT_GT(api().Get("/v1/instances/web/usage").json["shared_bytes"].get<uint64_t>(), 0u);
  EXPECT_EQ(StatusAndCode(api().Get("/v1/instances/nobody/usage")), "404 not_found");
}

TEST_F(ForkdApiTest, BodyOver64KiBIs413PayloadTooLarge) {
  StartForkd();
  std::string big =
      Json{{"name", "x"}, {"hypervisor", "cloud-hypervisor"}, {"import_dir", std::string(70 * 1024, 'a')}}.dump();
  EXPECT_EQ(StatusAndCode(api().Post("/v1/instances", big)), "413 payload_too_large");
  EXPECT_EQ(api().Get("/v1/healthz").status, 200);
}

// Forks are counted per fork with their outcome (a failed request for 3 counts 3), requests apart;
// the phases a Standby-to-Standby fork does not have (restore) are not observed.
TEST_F(ForkdApiTest, MetricsCountForksPerForkByOutcomeAndRequestsApart) {
  StartForkd();
  Import("web");
  ASSERT_EQ(api().Post("/v1/instances/web/fork", Json{{"name", "f"}, {"count", 2}}).status, 201);
  ASSERT_EQ(api().Post("/v1/instances/nobody/fork", Json{{"name", "g"}, {"count", 3}}).status, 404);
  ApiResponse metrics = api().Get("/v1/metrics");
  ASSERT_EQ(metrics.status, 200);
  EXPECT_EQ(metrics.content_type, "text/plain; version=0.0.4");
  for (const char* line :
       {"forkengine_forks_total{outcome=\"ok\"} 2\n", "forkengine_forks_total{outcome=\"not_found\"} 3\n",
        "forkengine_fork_requests_total{outcome=\"ok\"} 1\n",
        "forkengine_fork_requests_total{outcome=\"not_found\"} 1\n", "forkengine_fork_duration_seconds_count 2\n",
        "forkengine_fork_phase_seconds_count{phase=\"clone\"} 2\n",
        "forkengine_fork_phase_seconds_count{phase=\"restore\"} 0\n", "forkengine_instances{state=\"Standby\"} 3\n",
        "forkengine_http_requests_total{method=\"POST\",route=\"/v1/instances/{id}/fork\",status=\"201\"} 1\n",
        "forkengine_storage_volumes{backend=\"reflink\"} 3\n"}) {
    EXPECT_NE(metrics.body.find(line), std::string::npos) << line << "\n" << metrics.body;
  }
}

// The data root on a filesystem too small for the imported data: the copy runs out of space.
TEST_F(ForkdApiTest, FullStorageIs507NoSpaceAndLeavesNothing) {
  fe::test::ScratchResult host = fe::test::Scratch::HostDir();
  ASSERT_TRUE(host.status.ok()) << host.status.ToString();
  storage::loop::LoopFilesystemOptions options{.type = storage::loop::LoopFilesystemType::kXfs,
                                               .image_path = host.path + "/tiny-" + std::to_string(::getpid()) + ".img",
                                               .size_bytes = 512 * fe::test::kMiB,
                                               .mount_point = temp_->Sub("tiny"),
                                               .keep_image = false};
  Result<storage::loop::LoopFilesystem> tiny = storage::loop::LoopFilesystem::Open(options);
  ASSERT_TRUE(tiny.ok()) << tiny.status().ToString();
  data_root_ = tiny->mount_point() + "/data";
  StartForkd();
  // Fill the filesystem but for 4 MiB, then import 64 MiB of data from another filesystem (a copy).
  struct statvfs fs {};
  ASSERT_EQ(::statvfs(tiny->mount_point().c_str(), &fs), 0);
  uint64_t free_bytes = static_cast<uint64_t>(fs.f_bavail) * fs.f_frsize;
  int filler = ::open((tiny->mount_point() + "/filler").c_str(), O_CREAT | O_WRONLY, 0600);
  ASSERT_GE(filler, 0);
  ASSERT_EQ(::fallocate(filler, 0, 0, static_cast<off_t>(free_bytes - 4 * fe::test::kMiB)), 0) << std::strerror(errno);
  ::close(filler);
  std::string big_guest = temp_->Sub("big-guest");
  FE_ASSERT_OK(MakeGuestDir(big_guest, 64 * fe::test::kMiB));

  ApiResponse full =
      api().Post("/v1/instances", Json{{"name", "big"}, {"hypervisor", "cloud-hypervisor"}, {"import_dir", big_guest}});
  EXPECT_EQ(StatusAndCode(full), "507 no_space") << full.body;
  EXPECT_EQ(api().Get("/v1/instances").json["instances"].size(), 0u);
  EXPECT_EQ(ListDir(data_root_ + "/volumes"), std::vector<std::string>{});
  forkd_.reset();
  FE_EXPECT_OK(tiny->Close());
}

TEST_F(ForkdApiTest, TcpWithoutTheBearerTokenIs401Unauthenticated) {
  int port = fe::test::FreeTcpPort();
  ASSERT_GT(port, 0);
  std::string token_file = temp_->Sub("token");
  FE_ASSERT_OK(fe::test::WriteFile(token_file, "s3cret-token\n", 0600));
  StartForkd({"--listen-tcp", "127.0.0.1:" + std::to_string(port), "--token-file", token_file});
  httplib::Client tcp("127.0.0.1", port);
  httplib::Result anonymous = tcp.Get("/v1/healthz");
  ASSERT_TRUE(anonymous) << httplib::to_string(anonymous.error());
  EXPECT_EQ(anonymous->status, 401);
  EXPECT_EQ(Json::parse(anonymous->body, nullptr, false)["code"], "unauthenticated") << anonymous->body;
  httplib::Result wrong = tcp.Get("/v1/healthz", {{"Authorization", "Bearer s3cret-tokem"}});
  ASSERT_TRUE(wrong);
  EXPECT_EQ(wrong->status, 401);
  httplib::Result right = tcp.Get("/v1/healthz", {{"Authorization", "Bearer s3cret-token"}});
  ASSERT_TRUE(right);
  EXPECT_EQ(right->status, 200) << right->body;
  EXPECT_EQ(api().Get("/v1/healthz").status, 200);  // the Unix socket needs no token
}

TEST_F(ForkdApiTest, TcpWithoutATokenFileRefusesToStart) {
  ForkdProcess forkd(data_root_, socket_, temp_->Sub("forkd.log"), {"--listen-tcp", "127.0.0.1:1"});
  FE_ASSERT_OK(forkd.Start());
  int status = forkd.Wait();
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_NE(WEXITSTATUS(status), 0);
  EXPECT_NE(forkd.Log().find("--token-file"), std::string::npos) << forkd.Log();
}

TEST_F(ForkdApiTest, ASecondForkdOnALiveSocketRefusesToStart) {
  StartForkd();
  ForkdProcess second(scratch_ + "/other-data", socket_, temp_->Sub("second.log"));
  FE_ASSERT_OK(second.Start());
  int status = second.Wait();
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_NE(WEXITSTATUS(status), 0);
  EXPECT_EQ(api().Get("/v1/healthz").status, 200) << second.Log();
}

}  // namespace
}  // namespace fe::engine::forkd::test
