// Issue #23's end-to-end test: a snapshot of a Running guest (a counter ticking in its serial log),
// taken through forkctl as built on the live path (the source paused for the clone only), forked
// three times, each fork running with its own identity and continuing from the snapshot's counter;
// the source rolled back to the snapshot, its counter going back; the source deleted and the
// snapshot still forking. QEMU under TCG in a network namespace of the test's own
// (tests/e2e/vm_fork_fixture.h). Label e2e.
#include "tests/e2e/vm_fork_fixture.h"

namespace fe::e2e {
namespace {

// The beats the source had printed just before the snapshot was asked for and just after it was
// taken: the snapshot holds the counter somewhere between (the source runs on while forkd finishes
// the snapshot's metadata and sets its clock).
struct SnapshotBeats {
  int before = -1, after = -1;
};

// The first beat `vm`'s guest prints in its log, and a later one with its own identity.
void ExpectRunsOnFrom(const Vm& vm, SnapshotBeats at, const engine::forkd::test::ForkdProcess& forkd) {
  SCOPED_TRACE(vm.name);
  Result<Beat> first = WaitForBeat(
      vm.serial_log, [](const Beat&) { return true; }, kBeatTimeout);
  ASSERT_TRUE(first.ok()) << first.status().ToString() << forkd.Log();
  // The guest goes on from the snapshot: its first beat is the one after the snapshot's (or the one
  // in flight when it was taken), whatever the source printed since.
  EXPECT_GE(first->number, at.before) << SerialLog(vm);
  EXPECT_LE(first->number, at.after + 2) << "the counter did not continue from the snapshot's\n" << SerialLog(vm);
  Result<Beat> own = BeatWithOwnIdentity(vm, first->number - 1);
  EXPECT_TRUE(own.ok()) << "the guest wears its own MAC and IP: " << own.status().ToString() << SerialLog(vm);
}

TEST_F(VmForkEndToEndTest, ASnapshotOfARunningGuestForksThreeWaysRollsItsSourceBackAndOutlivesIt) {
  if (std::string why = fe::test::GuestUnavailableReason(); !why.empty()) GTEST_SKIP() << why;
  FE_SCRATCH(scratch, fe::test::Scratch::Root(fe::test::ScratchFs::kXfs));
  const Clock::time_point test_start = Clock::now();
  std::string root;
  ASSERT_NO_FATAL_FAILURE(MakeRootWithGuest(scratch, "snap", root));
  const std::string data_root = root + "/d";
  std::string skip = fe::test::RunInNewNetworkNamespace([&] {
    WithForkd(root, [&](const Session& session) {
      struct Cleanup {
        const Forkctl& forkctl;
        ~Cleanup() {
          for (const char* name : {"try-1", "try-2", "try-3", "after", "src"}) (void)forkctl.Run({"rm", name});
        }
      } cleanup{session.forkctl};
      Vm src;
      ASSERT_NO_FATAL_FAILURE(BootSource(session, "src", root + "/tpl", src));

      // 1. The snapshot, live: the source runs on in the same process.
      SnapshotBeats snapshot_beats;
      snapshot_beats.before = ReadBeats(src.serial_log).back().number;  // BootSource saw beat 3
      const Json taken = session.Run({"snapshot", "create", "src", "--name", "good"});
      ASSERT_TRUE(taken.contains("snapshot")) << taken.dump();
      PrintPhases("snapshot of src", taken);
      snapshot_beats.after = ReadBeats(src.serial_log).back().number;
      const std::string snapshot = taken["snapshot"]["id"];
      EXPECT_TRUE(taken.value("live", false)) << taken.dump();
      EXPECT_EQ(taken["snapshot"]["taken_in"], "Running");
      const Vm src_after = session.Show("src");
      EXPECT_EQ(src_after.state, "Running");
      EXPECT_EQ(src_after.pid, src.pid) << "the source was paused, not restarted";

      // 2. Three forks of it, each on its own identity, from the snapshot's counter.
      const Json forked = session.Run(
          {"fork", "--from-snapshot", snapshot, "--name", "try", "--count", "3", "--target-state", "Running"});
      ASSERT_EQ(forked.value("forks", Json::array()).size(), 3u) << forked.dump();
      std::set<std::string> macs{src.mac};
      for (const char* name : {"try-1", "try-2", "try-3"}) {
        const Vm fork = session.Show(name);
        ASSERT_EQ(fork.state, "Running");
        EXPECT_TRUE(macs.insert(fork.mac).second) << name << " shares a MAC";
        ASSERT_NO_FATAL_FAILURE(ExpectRunsOnFrom(fork, snapshot_beats, session.forkd));
      }

      // 3. The source rolled back: its counter goes back to the snapshot's.
      Result<Beat> src_later = WaitForBeat(
          src.serial_log, [&](const Beat& b) { return b.number >= snapshot_beats.after + 4; }, kBeatTimeout);
      ASSERT_TRUE(src_later.ok()) << src_later.status().ToString();
      const Json rolled = session.Run({"restore", "src", "--snapshot", snapshot});
      EXPECT_EQ(rolled.value("state", ""), "Running") << rolled.dump();
      const Vm src_rolled = session.Show("src");
      EXPECT_EQ(src_rolled.mac, src.mac) << "the source keeps its identity";
      EXPECT_NE(src_rolled.serial_log, src.serial_log) << "its guest data is a new volume";
      ASSERT_NO_FATAL_FAILURE(ExpectRunsOnFrom(src_rolled, snapshot_beats, session.forkd));

      // 4. The source deleted: the snapshot still forks.
      session.Run({"rm", "src"});
      const Json after =
          session.Run({"fork", "--from-snapshot", snapshot, "--name", "after", "--target-state", "Running"});
      ASSERT_EQ(after.value("forks", Json::array()).size(), 1u) << after.dump();
      ASSERT_NO_FATAL_FAILURE(ExpectRunsOnFrom(session.Show("after"), snapshot_beats, session.forkd));
      const Json snapshots = session.Run({"snapshot", "ls"});
      ASSERT_EQ(snapshots.value("snapshots", Json::array()).size(), 1u) << snapshots.dump();
      EXPECT_EQ(snapshots["snapshots"][0]["instance_name"], "src");

      session.Run({"rm", "try-1", "try-2", "try-3", "after"});
      session.Run({"snapshot", "rm", snapshot});
      EXPECT_EQ(engine::forkd::test::ListDir(data_root + "/volumes"), std::vector<std::string>{});
    });
  });
  if (!skip.empty()) GTEST_SKIP() << skip;
  std::printf("snapshot end-to-end test took %.1f s\n",
              std::chrono::duration<double>(Clock::now() - test_start).count());
}

}  // namespace
}  // namespace fe::e2e
