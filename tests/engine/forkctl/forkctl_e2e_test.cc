// forkctl against a real forkd: both binaries as built, forkd on a temp Unix socket with its data
// root on a loop-mounted XFS (reflink), forkctl run as a user would run it.
#include <btrfsutil.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <optional>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/support/file_util.h"
#include "tests/support/scratch.h"
#include "tests/support/temp_dir.h"

extern char** environ;

namespace fe::engine::forkctl {
namespace {

using nlohmann::json;

struct Invocation {
  int exit_code = -1;
  std::string out;
  std::string err;
};

std::vector<char*> Argv(std::vector<std::string>& args) {
  std::vector<char*> argv;
  for (std::string& arg : args) argv.push_back(arg.data());
  argv.push_back(nullptr);
  return argv;
}

// Starts argv[0] (a path) with stdout and stderr appended to the files `out` and `err`; other fds
// without FD_CLOEXEC (forkd's --ready-fd) are inherited.
pid_t Spawn(std::vector<std::string> args, const std::string& out, const std::string& err) {
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 1, out.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  posix_spawn_file_actions_addopen(&actions, 2, err.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  pid_t pid = -1;
  std::vector<char*> argv = Argv(args);
  int error = posix_spawn(&pid, argv[0], &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  EXPECT_EQ(error, 0) << args[0] << ": " << std::strerror(error);
  return error == 0 ? pid : -1;
}

int Wait(pid_t pid) {
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

class ForkctlEndToEndTest : public fe::test::ScratchTest {
 protected:
  void SetUp() override {
    FE_SCRATCH_DIR(scratch, fe::test::ScratchFs::kXfs);
    scratch_ = scratch;
    Result<fe::test::TempDir> temp = fe::test::TempDir::Create();
    FE_ASSERT_OK(temp);
    temp_.emplace(std::move(*temp));
    socket_ = temp_->Sub("forkd.sock");
    StartForkd();
  }

  void TearDown() override {
    if (forkd_ > 0) {
      EXPECT_EQ(StopForkd(), 0) << "forkd exits 0 on SIGTERM; its log:\n" << ForkdLog();
    }
  }

  void StartForkd() {
    int ready[2];
    ASSERT_EQ(::pipe(ready), 0);
    forkd_ = Spawn({FE_FORKD, "--data-root", scratch_ + "/root", "--socket", socket_, "--loop-pool", "none",
                    "--ready-fd", std::to_string(ready[1])},
                   temp_->Sub("forkd.log"), temp_->Sub("forkd.log"));
    ::close(ready[1]);
    ASSERT_GT(forkd_, 0);
    char buffer[16] = {};
    ssize_t got = ::read(ready[0], buffer, sizeof(buffer) - 1);  // EOF when forkd dies before it is ready
    ::close(ready[0]);
    ASSERT_GT(got, 0) << "forkd did not get ready; its log:\n" << ForkdLog();
  }

  int StopForkd() {
    ::kill(forkd_, SIGTERM);
    int code = Wait(forkd_);
    forkd_ = -1;
    return code;
  }

  std::string ForkdLog() const {
    Result<std::string> log = fe::test::ReadFile(temp_->Sub("forkd.log"));
    return log.ok() ? *log : log.status().ToString();
  }

  Invocation Forkctl(std::vector<std::string> args) {
    args.insert(args.begin(), {FE_FORKCTL, "--socket", socket_});
    std::string out = temp_->Sub("out-" + std::to_string(runs_)), err = temp_->Sub("err-" + std::to_string(runs_));
    ++runs_;
    Invocation run;
    pid_t pid = Spawn(args, out, err);
    if (pid < 0) return run;
    run.exit_code = Wait(pid);
    run.out = fe::test::ReadFile(out).ok() ? *fe::test::ReadFile(out) : "";
    run.err = fe::test::ReadFile(err).ok() ? *fe::test::ReadFile(err) : "";
    return run;
  }

  // forkctl --json <args>, parsed; fails the test when forkctl does.
  json ForkctlJson(std::vector<std::string> args) {
    args.insert(args.begin(), "--json");
    Invocation run = Forkctl(args);
    EXPECT_EQ(run.exit_code, 0) << run.err;
    json parsed = json::parse(run.out, nullptr, false);
    EXPECT_FALSE(parsed.is_discarded()) << run.out;
    return parsed;
  }

  // Writes a small sample instance with forkctl and imports it as `name`.
  void ImportSample(const std::string& name) {
    std::string dir = scratch_ + "/sample-" + name;
    Invocation sample = Forkctl({"sample-instance", dir, "--disk-size", "64M", "--memory-size", "8M"});
    ASSERT_EQ(sample.exit_code, 0) << sample.err;
    Invocation created = Forkctl({"create", name, "--hypervisor", "cloud-hypervisor", "--import", dir});
    ASSERT_EQ(created.exit_code, 0) << created.err << "\nforkd log:\n" << ForkdLog();
    EXPECT_NE(created.out.find("created " + name + " (i-"), std::string::npos) << created.out;
    EXPECT_NE(created.out.find("): Standby"), std::string::npos) << created.out;
  }

  std::string scratch_;
  std::optional<fe::test::TempDir> temp_;
  std::string socket_;
  pid_t forkd_ = -1;
  int runs_ = 0;
};

TEST_F(ForkctlEndToEndTest, ImportsForksListsShowsTheTreeAndRemoves) {
  ImportSample("template");

  Invocation fork = Forkctl({"fork", "template", "--name", "child"});
  ASSERT_EQ(fork.exit_code, 0) << fork.err << "\nforkd log:\n" << ForkdLog();
  EXPECT_NE(fork.out.find("NAME"), std::string::npos) << fork.out;
  EXPECT_NE(fork.out.find("child"), std::string::npos) << fork.out;
  EXPECT_NE(fork.out.find("reflink"), std::string::npos) << "the data root is XFS: " << fork.out;

  json fan = ForkctlJson({"fork", "child", "--name", "grandchild", "--count", "3"});
  ASSERT_EQ(fan["forks"].size(), 3u) << fan.dump(2);
  for (const json& made : fan["forks"]) {
    EXPECT_EQ(made["mechanism"], "reflink");
    EXPECT_GT(made["shared_bytes"].get<uint64_t>(), 0u) << made.dump(2);
    EXPECT_GT(made["phases"]["total_us"].get<int64_t>(), 0);
  }

  Invocation ls = Forkctl({"ls"});
  ASSERT_EQ(ls.exit_code, 0) << ls.err;
  EXPECT_EQ(ls.out.rfind("NAME", 0), 0u) << ls.out;
  for (const char* name : {"template", "child", "grandchild-1", "grandchild-2", "grandchild-3"}) {
    EXPECT_NE(ls.out.find(name), std::string::npos) << name << " missing from\n" << ls.out;
  }
  json listed = ForkctlJson({"ls"});
  ASSERT_EQ(listed["instances"].size(), 5u);
  std::string template_id, child_id;
  for (const json& instance : listed["instances"]) {
    if (instance["name"] == "template") template_id = instance["id"];
    if (instance["name"] == "child") child_id = instance["id"];
  }
  json shown = ForkctlJson({"show", "child"});
  EXPECT_EQ(shown["parent_id"], template_id);
  Invocation show = Forkctl({"show", child_id});
  ASSERT_EQ(show.exit_code, 0) << show.err;
  EXPECT_NE(show.out.find("parent      " + template_id), std::string::npos) << show.out;

  Invocation tree = Forkctl({"tree"});
  ASSERT_EQ(tree.exit_code, 0) << tree.err;
  std::vector<std::string> lines;
  for (size_t start = 0, end; (end = tree.out.find('\n', start)) != std::string::npos; start = end + 1) {
    lines.push_back(tree.out.substr(0, end).substr(start));
  }
  ASSERT_EQ(lines.size(), 5u) << tree.out;
  EXPECT_EQ(lines[0].rfind("template  " + template_id, 0), 0u) << tree.out;
  EXPECT_EQ(lines[1].rfind("└── child  " + child_id, 0), 0u) << tree.out;
  for (int i = 2; i < 5; ++i) {
    EXPECT_EQ(lines[i].rfind(std::string(i < 4 ? "    ├── " : "    └── ") + "grandchild-", 0), 0u) << tree.out;
  }

  Invocation rm = Forkctl({"rm", "grandchild-1", "grandchild-2", "grandchild-3", child_id});
  ASSERT_EQ(rm.exit_code, 0) << rm.err;
  EXPECT_NE(rm.out.find("removed grandchild-3\n"), std::string::npos) << rm.out;
  json left = ForkctlJson({"ls"});
  ASSERT_EQ(left["instances"].size(), 1u) << left.dump(2);
  EXPECT_EQ(left["instances"][0]["name"], "template");
}

TEST_F(ForkctlEndToEndTest, EventsShowAForksLifeAndUsageShowsInLsAndShow) {
  ImportSample("template");
  ASSERT_EQ(Forkctl({"fork", "template", "--name", "child"}).exit_code, 0);

  Invocation events = Forkctl({"events", "--since", "0", "--count", "5"});
  ASSERT_EQ(events.exit_code, 0) << events.err;
  std::vector<std::string> lines;
  for (size_t start = 0, end; (end = events.out.find('\n', start)) != std::string::npos; start = end + 1) {
    lines.push_back(events.out.substr(start, end - start));
  }
  ASSERT_EQ(lines.size(), 5u) << events.out;
  const char* const kTypes[] = {"engine.started", "instance.created", "fork.started", "instance.created",
                                "fork.finished"};
  for (size_t i = 0; i < lines.size(); ++i) {
    EXPECT_EQ(lines[i].rfind(std::string(5, ' ') + std::to_string(i + 1) + " ", 0), 0u) << lines[i];
    EXPECT_NE(lines[i].find(kTypes[i]), std::string::npos) << lines[i];
  }
  EXPECT_NE(lines[4].find("child (i-"), std::string::npos) << lines[4];
  EXPECT_NE(lines[4].find("(reflink)"), std::string::npos) << lines[4];

  Invocation ls = Forkctl({"ls", "--usage"});
  ASSERT_EQ(ls.exit_code, 0) << ls.err;
  EXPECT_NE(ls.out.find("ALLOCATED"), std::string::npos) << ls.out;
  EXPECT_NE(ls.out.find("EXCLUSIVE"), std::string::npos) << ls.out;
  Invocation show = Forkctl({"show", "child"});
  ASSERT_EQ(show.exit_code, 0) << show.err;
  EXPECT_NE(show.out.find("measured by fiemap"), std::string::npos) << show.out;
}

TEST_F(ForkctlEndToEndTest, CreateTemplateMarksATemplateThatForksButNeverRuns) {
  const std::string dir = scratch_ + "/sample-golden";
  ASSERT_EQ(Forkctl({"sample-instance", dir, "--disk-size", "64M", "--memory-size", "8M"}).exit_code, 0);
  json golden = ForkctlJson({"create", "golden", "--hypervisor", "cloud-hypervisor", "--import", dir, "--template"});
  ASSERT_TRUE(golden.contains("template")) << golden.dump(2);
  EXPECT_EQ(golden["template"]["content_hash"].get<std::string>().size(), 64u);
  EXPECT_EQ(Forkctl({"fork", "golden", "--name", "from-golden"}).exit_code, 0);
  Invocation restored = Forkctl({"restore", "golden"});
  EXPECT_EQ(restored.exit_code, 1);
  EXPECT_NE(restored.err.find("template"), std::string::npos) << restored.err;
}

TEST_F(ForkctlEndToEndTest, LabelsSetAtCreateAndForkFilterLs) {
  const std::string dir = scratch_ + "/sample-labelled";
  ASSERT_EQ(Forkctl({"sample-instance", dir, "--disk-size", "64M", "--memory-size", "8M"}).exit_code, 0);
  json base = ForkctlJson(
      {"create", "base", "--hypervisor", "cloud-hypervisor", "--import", dir, "--label", "team=a", "--label", "t=1"});
  EXPECT_EQ(base["labels"], (json{{"team", "a"}, {"t", "1"}})) << base.dump(2);
  ASSERT_EQ(Forkctl({"fork", "base", "--name", "gold", "--count", "2", "--label", "tier=gold"}).exit_code, 0);
  ASSERT_EQ(Forkctl({"fork", "base", "--name", "free", "--label", "tier=free", "--label", "t=2"}).exit_code, 0);

  json gold = ForkctlJson({"ls", "-l", "tier=gold", "-l", "team=a"});
  ASSERT_EQ(gold["instances"].size(), 2u) << gold.dump(2);
  EXPECT_EQ(gold["instances"][0]["labels"], (json{{"team", "a"}, {"t", "1"}, {"tier", "gold"}}));
  EXPECT_EQ(ForkctlJson({"ls", "--label", "tier"})["instances"].size(), 3u);
  EXPECT_EQ(ForkctlJson({"ls", "-l", "t=2"})["instances"][0]["name"], "free");
  EXPECT_EQ(ForkctlJson({"ls", "--parent", base["id"]})["instances"].size(), 3u);
  Invocation table = Forkctl({"ls", "-l", "tier=free"});
  ASSERT_EQ(table.exit_code, 0) << table.err;
  EXPECT_NE(table.out.find("free"), std::string::npos) << table.out;
  EXPECT_EQ(table.out.find("gold-1"), std::string::npos) << table.out;

  Invocation no_equals = Forkctl({"fork", "base", "--name", "x", "--label", "tier"});
  EXPECT_EQ(no_equals.exit_code, 1);
  EXPECT_NE(no_equals.err.find("--label 'tier': expected key=value"), std::string::npos) << no_equals.err;
  Invocation bad = Forkctl({"ls", "-l", "=x"});
  EXPECT_EQ(bad.exit_code, 1) << bad.out;
  EXPECT_NE(bad.err.find("label"), std::string::npos) << bad.err;
}

TEST_F(ForkctlEndToEndTest, ServerErrorsPrintTheMessageCodeAndStatusAndExitOne) {
  ImportSample("template");

  Invocation bad_name = Forkctl({"fork", "template", "--name", "Not_A_DNS_Label"});
  EXPECT_EQ(bad_name.exit_code, 1);
  EXPECT_EQ(bad_name.out, "");
  EXPECT_EQ(bad_name.err.rfind("forkctl: ", 0), 0u) << bad_name.err;
  EXPECT_NE(bad_name.err.find("Not_A_DNS_Label"), std::string::npos) << bad_name.err;
  EXPECT_NE(bad_name.err.find("(invalid_argument, HTTP 400)\n"), std::string::npos) << bad_name.err;

  Invocation missing = Forkctl({"show", "no-such-instance"});
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_NE(missing.err.find("(not_found, HTTP 404)\n"), std::string::npos) << missing.err;

  Invocation taken = Forkctl({"fork", "template", "--name", "template"});
  EXPECT_EQ(taken.exit_code, 1);
  EXPECT_NE(taken.err.find("(already_exists, HTTP 409)\n"), std::string::npos) << taken.err;

  Invocation partly = Forkctl({"rm", "no-such-instance", "template"});
  EXPECT_EQ(partly.exit_code, 1) << "one failed delete makes the exit code 1";
  EXPECT_NE(partly.out.find("removed template"), std::string::npos) << "the others are still deleted";
}

TEST_F(ForkctlEndToEndTest, HealthAndStorageReportForkdsState) {
  Invocation health = Forkctl({"health"});
  EXPECT_EQ(health.exit_code, 0) << health.err;
  EXPECT_EQ(health.out, "forkd ok at " + socket_ + ": 0 instances\n");
  Invocation storage = Forkctl({"storage"});
  EXPECT_EQ(storage.exit_code, 0) << storage.err;
  EXPECT_EQ(storage.out.rfind("backend     reflink\n", 0), 0u) << storage.out;
  EXPECT_NE(storage.out.find("\nmeasured    reflink "), std::string::npos) << "costs timed at start: " << storage.out;
  json details = ForkctlJson({"storage"});
  EXPECT_EQ(details["backend"], "reflink");
}

TEST_F(ForkctlEndToEndTest, StorageProbeTimesClonesOnThePathAndSaysWhatAutoPicks) {
  FE_SCRATCH_DIR(btrfs, fe::test::ScratchFs::kBtrfs);
  json probe = ForkctlJson({"storage", "probe", btrfs});
  EXPECT_EQ(probe["auto"]["backend"], "btrfs") << probe.dump();
  std::set<std::string> mechanisms;
  for (const json& clone : probe["measured_costs"]["clones"]) mechanisms.insert(clone["mechanism"]);
  EXPECT_EQ(mechanisms, (std::set<std::string>{"btrfs-snapshot", "reflink", "copy"})) << probe.dump();
  EXPECT_TRUE(fe::test::ListDir(btrfs)->empty()) << "the calibration trees are gone";

  Invocation text = Forkctl({"storage", "probe", btrfs});
  EXPECT_EQ(text.exit_code, 0) << text.err;
  EXPECT_NE(text.out.find("\nmeasured    btrfs-snapshot "), std::string::npos) << text.out;
  json unmeasured = ForkctlJson({"storage", "probe", "--no-measure", btrfs});
  EXPECT_FALSE(unmeasured.contains("measured_costs")) << unmeasured.dump();
}

TEST_F(ForkctlEndToEndTest, CloneSnapshotsABtrfsSubvolumeAndReflinksASmallOne) {
  FE_SCRATCH_DIR(btrfs, fe::test::ScratchFs::kBtrfs);
  auto make_subvolume = [&](const std::string& path, int files) {
    ASSERT_EQ(btrfs_util_create_subvolume(path.c_str(), 0, nullptr, nullptr), BTRFS_UTIL_OK) << path;
    for (int i = 0; i < files; ++i) {
      FE_ASSERT_OK(fe::test::WriteFile(path + "/f" + std::to_string(i), "file " + std::to_string(i)));
    }
  };
  auto inode = [](const std::string& path) {
    struct stat st {};
    EXPECT_EQ(::stat(path.c_str(), &st), 0) << path;
    return st.st_ino;
  };
  constexpr ino_t kSubvolumeRootInode = 256;  // every btrfs subvolume's root directory

  make_subvolume(btrfs + "/large", 60);
  json large = ForkctlJson({"clone", btrfs + "/large", btrfs + "/large-clone"});
  EXPECT_EQ(large["mechanism"], "btrfs-snapshot") << large.dump();
  EXPECT_EQ(inode(btrfs + "/large-clone"), kSubvolumeRootInode);
  EXPECT_EQ(*fe::test::ReadFile(btrfs + "/large-clone/f59"), "file 59");

  make_subvolume(btrfs + "/small", 3);
  Invocation small = Forkctl({"clone", btrfs + "/small", btrfs + "/small-clone"});
  EXPECT_EQ(small.exit_code, 0) << small.err;
  EXPECT_NE(small.err.find("small subvolume (3 entries, crossover"), std::string::npos) << small.err;
  EXPECT_NE(inode(btrfs + "/small-clone"), kSubvolumeRootInode) << "reflinked into a plain directory";
  EXPECT_EQ(*fe::test::ReadFile(btrfs + "/small-clone/f2"), "file 2");

  // Forced, the small one is snapshotted too; a plain directory cannot be.
  json forced = ForkctlJson({"clone", "--backend", "btrfs", btrfs + "/small", btrfs + "/small-snapshot"});
  EXPECT_EQ(forced["mechanism"], "btrfs-snapshot") << forced.dump();
  Invocation plain = Forkctl({"clone", "--backend", "btrfs", btrfs + "/small-clone", btrfs + "/nothing"});
  EXPECT_EQ(plain.exit_code, 2);
  EXPECT_NE(plain.err.find("needs it to be a subvolume root"), std::string::npos) << plain.err;
  EXPECT_NE(::access((btrfs + "/nothing").c_str(), F_OK), 0);
}

TEST_F(ForkctlEndToEndTest, AStoppedForkdIsNamedWithItsSocketAndExitsOne) {
  ASSERT_EQ(StopForkd(), 0) << ForkdLog();
  Invocation health = Forkctl({"health"});
  EXPECT_EQ(health.exit_code, 1);
  EXPECT_NE(health.err.find(socket_), std::string::npos) << health.err;
  EXPECT_NE(health.err.find("forkd"), std::string::npos) << health.err;
}

TEST_F(ForkctlEndToEndTest, UsageErrorsExitTwoWithoutAskingForkd) {
  Invocation no_name = Forkctl({"fork", "template"});
  EXPECT_EQ(no_name.exit_code, 2);
  EXPECT_NE(no_name.err.find("--name"), std::string::npos) << no_name.err;
  Invocation count = Forkctl({"fork", "template", "--name", "x", "--count", "65"});
  EXPECT_EQ(count.exit_code, 2) << count.err;
  json listed = ForkctlJson({"ls"});
  EXPECT_EQ(listed["instances"].size(), 0u) << "nothing reached forkd";
}

}  // namespace
}  // namespace fe::engine::forkctl
