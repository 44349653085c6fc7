// Issue #7's end-to-end test: a real guest forked while running (a busy one: it keeps rewriting part
// of its RAM), then a fork of that fork from standby, all through forkd and forkctl as built. The guest
// (tests/e2e/fork_guest.h) is the Debian kernel under QEMU TCG with its RAM in a shared file on a reflink XFS scratch
// filesystem (so forkd takes the live path), forkagent on the identity port, a vmgenid, and a NIC on a TAP forkd makes
// and bridges. Everything runs on a thread in a network namespace of the test's own, so forkd, the QEMUs and ping
// (which inherit it) touch nothing of the host's network; the bridge holds the subnet's gateway address so the
// namespace can ping the guests.
//
// It asserts what a user of forks relies on (both copies run on, each with its own identity, clock
// and randomness, nothing shared, nothing left behind) and prints each fork's phases; it asserts no
// timing beyond "the fork's clock is within a second of the host's". Label e2e.
#include "tests/e2e/vm_fork_fixture.h"

namespace fe::e2e {
namespace {

TEST_F(VmForkEndToEndTest, ForksOfARunningGuestAndOfItsForkRunOnWithOwnIdentityClockAndRandomness) {
  if (std::string why = fe::test::GuestUnavailableReason(); !why.empty()) GTEST_SKIP() << why;
  // A short directory on the reflink XFS scratch root: QEMU's socket paths must fit in sun_path.
  FE_SCRATCH(scratch, fe::test::Scratch::Root(fe::test::ScratchFs::kXfs));
  const Clock::time_point test_start = Clock::now();
  std::string root;
  ASSERT_NO_FATAL_FAILURE(MakeRootWithGuest(scratch, "e2e", root));
  const std::string template_dir = root + "/tpl";
  ASSERT_NO_FATAL_FAILURE(KeepGuestBusy(template_dir, /*anonymous_ram=*/false));
  const std::string data_root = root + "/d";

  std::string skip = fe::test::RunInNewNetworkNamespace([&] {
    WithForkd(root, [&](const Session& session) {
      auto run = [&](const std::vector<std::string>& args) { return session.Run(args); };
      auto show = [&](const std::string& name) { return session.Show(name); };
      // Whatever a failed assertion leaves is deleted on the way out (forkd stops the VMs).
      struct Cleanup {
        const Forkctl& forkctl;
        ~Cleanup() {
          for (const char* name : {"grandchild", "child", "src"}) (void)forkctl.Run({"rm", name});
        }
      } cleanup{session.forkctl};

      // 1-2. The source, booted and beating with the identity forkd leased it.
      Vm src;
      ASSERT_NO_FATAL_FAILURE(BootSource(session, "src", template_dir, src));
      std::printf("source booted and beating after %.1f s\n",
                  std::chrono::duration<double>(Clock::now() - test_start).count());
      Status pinged = Ping(src.ipv4);
      ASSERT_TRUE(pinged.ok()) << pinged.ToString();

      // 3-4. The live fork of the running source.
      const std::vector<Beat> src_beats = ReadBeats(src.serial_log);
      ASSERT_FALSE(src_beats.empty());
      const Beat before_fork = src_beats.back();
      const Json forked = run({"fork", "src", "--name", "child", "--from-running", "--target-state", "Running"});
      ASSERT_TRUE(forked.contains("forks") && forked["forks"].size() == 1) << forked.dump();
      PrintPhases("live fork src -> child", forked["forks"][0]);
      EXPECT_TRUE(forked["forks"][0].value("live", false)) << "the fast path was not taken: " << forked.dump();
      // The pre-flush ran and the pause's remainder was measured (cachestat: Linux 6.5+); the source's
      // clock, stopped during the pause, was set by its agent.
      const Json& live_phases = forked["forks"][0]["phases"];
      EXPECT_GE(live_phases.value("preflush_rounds", -1), 0) << forked.dump();
      EXPECT_TRUE(live_phases.contains("dirty_bytes_at_pause")) << forked.dump();
      EXPECT_EQ(forked["forks"][0].value("source_clock", ""), "set") << forked.dump();
      const Vm src_after = show("src");
      EXPECT_EQ(src_after.state, "Running");
      EXPECT_EQ(src_after.pid, src.pid) << "the source was paused, not restarted";
      const Vm child = show("child");
      ASSERT_EQ(child.state, "Running");
      EXPECT_NE(child.mac, src.mac);
      EXPECT_NE(child.ipv4, src.ipv4);
      CheckPair(src, child, before_fork, {src, child});
      if (HasFatalFailure()) return;

      // 5. A fork of the fork, from standby: the child's snapshot sits a while, the grandchild is forked
      // from it and restored, the child restored too.
      run({"standby", "child"});
      const std::vector<Beat> child_beats = ReadBeats(child.serial_log);
      ASSERT_FALSE(child_beats.empty());
      const Beat child_at_standby = child_beats.back();
      std::this_thread::sleep_for(kSnapshotSits);
      const Json forked_again = run({"fork", "child", "--name", "grandchild", "--target-state", "Running"});
      ASSERT_TRUE(forked_again.contains("forks") && forked_again["forks"].size() == 1) << forked_again.dump();
      PrintPhases("standby fork child -> grandchild", forked_again["forks"][0]);
      run({"restore", "child"});
      const Vm child_restored = show("child");
      const Vm grandchild = show("grandchild");
      ASSERT_EQ(child_restored.state, "Running");
      ASSERT_EQ(grandchild.state, "Running");
      EXPECT_NE(grandchild.mac, child.mac);
      EXPECT_NE(grandchild.mac, src.mac);
      CheckPair(child_restored, grandchild, child_at_standby, {src, child_restored, grandchild});
      if (HasFatalFailure()) return;

      // 6. Delete everything: no TAP, process, volume, lease or file of an instance is left.
      run({"rm", "grandchild", "child", "src"});
      for (const Vm& vm : {src, child_restored, grandchild}) {
        EXPECT_NE(::kill(vm.pid, 0), 0) << vm.name << "'s process " << vm.pid << " is still there";
      }
      EXPECT_EQ(ProcessesMentioning(data_root + "/volumes"), std::vector<pid_t>{}) << "processes of the instances";
      std::vector<std::string> devices = NetworkDevices();
      std::sort(devices.begin(), devices.end());
      EXPECT_EQ(devices, (std::vector<std::string>{kBridge, "lo"})) << "TAPs left behind";
      EXPECT_EQ(engine::forkd::test::ListDir(data_root + "/volumes"), std::vector<std::string>{});
      EXPECT_EQ(engine::forkd::test::ListDir(data_root + "/instances"), std::vector<std::string>{});
      Result<std::vector<std::string>> leased = engine::forkd::test::LeasedIds(data_root);
      ASSERT_TRUE(leased.ok()) << leased.status().ToString();
      EXPECT_EQ(*leased, std::vector<std::string>{});
    });
  });
  if (!skip.empty()) GTEST_SKIP() << skip;
  std::printf("end-to-end test took %.1f s\n", std::chrono::duration<double>(Clock::now() - test_start).count());
}

// Whether `pid` runs: exists and is no zombie. Once forkd has exited, init is its VMs' parent, and
// may not reap a VM killed later at once.
bool Runs(pid_t pid) {
  Result<engine::vm::ProcStat> stat = engine::vm::ReadProcStat(pid);
  return stat.ok() && stat->state != 'Z';
}

// Issue #21: forkd.service stops forkd alone (KillMode=process), so a running VM outlives it: its
// QEMU process lives on and its guest keeps beating while no forkd runs, and the next forkd (the
// unit's restart, an upgrade) finds it Running in the same process and can still manage it.
TEST_F(VmForkEndToEndTest, ARunningVmOutlivesForkdStoppedTheWayItsUnitStopsItAndTheNextForkdManagesIt) {
  if (std::string why = fe::test::GuestUnavailableReason(); !why.empty()) GTEST_SKIP() << why;
  FE_SCRATCH(scratch, fe::test::Scratch::Root(fe::test::ScratchFs::kXfs));
  std::string root;
  ASSERT_NO_FATAL_FAILURE(MakeRootWithGuest(scratch, "unit", root));
  std::string skip = fe::test::RunInNewNetworkNamespace([&] {
    MakeBridge();
    if (HasFatalFailure()) return;
    std::unique_ptr<engine::forkd::test::ForkdProcess> forkd = StartForkd(root);
    ASSERT_NE(forkd, nullptr);
    Vm vm;
    // Whatever a failed assertion leaves running is killed on the way out.
    struct KillLeftover {
      const Vm& vm;
      ~KillLeftover() {
        if (vm.pid > 0) ::kill(vm.pid, SIGKILL);
      }
    } leftover{vm};
    {
      const Forkctl forkctl(FE_FORKCTL, forkd->socket());
      ASSERT_NO_FATAL_FAILURE(BootSource(Session{*forkd, forkctl, root + "/d"}, "vm", root + "/tpl", vm));
    }
    StopForkdAsItsUnitDoes(*forkd);
    ASSERT_TRUE(Runs(vm.pid)) << "the VM's process " << vm.pid << " died with forkd";
    const std::vector<Beat> beats = ReadBeats(vm.serial_log);
    ASSERT_FALSE(beats.empty());
    const int last = beats.back().number;
    Result<Beat> later = WaitForBeat(
        vm.serial_log, [&](const Beat& b) { return b.number >= last + 2 && b.mac == vm.mac; }, kBeatTimeout);
    EXPECT_TRUE(later.ok()) << later.status().ToString() << "\n" << SerialLog(vm);

    forkd = StartForkd(root);
    ASSERT_NE(forkd, nullptr);
    const Forkctl forkctl(FE_FORKCTL, forkd->socket());
    const Session session{*forkd, forkctl, root + "/d"};
    const Vm found = session.Show("vm");
    EXPECT_EQ(found.state, "Running") << forkd->Log();
    EXPECT_EQ(found.pid, vm.pid) << "the next forkd did not re-attach to the VM's process";
    session.Run({"rm", "vm"});
    EXPECT_FALSE(Runs(vm.pid)) << "the re-attached forkd could not stop the VM";
    StopForkdAsItsUnitDoes(*forkd);
  });
  if (!skip.empty()) GTEST_SKIP() << skip;
}

// Issue #18: eight forks of one template mapping its RAM file (memory "shared"), beside one with RAM of
// its own. The template's guest has 64 MiB of its 256 MiB written before it is stood by; each fork
// then reads all its RAM (QMP pmemsave to /dev/null), so the shared forks' PSS shows the template's
// pages counted once among them. Asserted: every fork runs with its own identity and randomness, the
// template's file is unchanged and read-only, the template cannot be restored while forks map it (also
// after forkd is killed and restarted), and a shared fork costs less PSS than the private one. The
// figures are printed; forkbench --density measures them.
TEST_F(VmForkEndToEndTest, SharedMemoryForksRunOnTheTemplatesRamWithOwnIdentitiesAndLeaveItUnchanged) {
  if (std::string why = fe::test::GuestUnavailableReason(); !why.empty()) GTEST_SKIP() << why;
  FE_SCRATCH(scratch, fe::test::Scratch::Root(fe::test::ScratchFs::kXfs));
  const Clock::time_point test_start = Clock::now();
  std::string root;
  ASSERT_NO_FATAL_FAILURE(MakeRootWithGuest(scratch, "e2s", root));
  const std::string template_dir = root + "/tpl";
  {
    Result<hypervisor::qemu::Config> config = hypervisor::qemu::ReadConfig(template_dir);
    ASSERT_TRUE(config.ok()) << config.status().ToString();
    config->append += " fe.fill_mib=64";
    ASSERT_TRUE(hypervisor::qemu::WriteConfig(template_dir, *config).ok());
  }
  const std::string data_root = root + "/d";
  constexpr int kSharedForks = 8;

  std::string skip = fe::test::RunInNewNetworkNamespace([&] {
    MakeBridge();
    if (HasFatalFailure()) return;
    const std::vector<std::string> options = {"--bridge", kBridge,         "--manage-taps",         "on",
                                              "--subnet", "10.100.0.0/16", "--identity-timeout-ms", "120000"};
    std::optional<engine::forkd::test::ForkdProcess> forkd;
    forkd.emplace(data_root, root + "/forkd.sock", root + "/forkd.log", options);
    auto start_forkd = [&] {
      Status started = forkd->Start();
      ASSERT_TRUE(started.ok()) << started.ToString();
      Status ready = forkd->WaitReady();
      ASSERT_TRUE(ready.ok()) << ready.ToString();
    };
    start_forkd();
    if (HasFatalFailure()) return;
    const Forkctl forkctl(FE_FORKCTL, forkd->socket());
    auto run = [&](const std::vector<std::string>& args) -> Json {
      Result<Json> reply = forkctl.Run(args);
      EXPECT_TRUE(reply.ok()) << reply.status().ToString() << "\nforkd's log:\n" << forkd->Log();
      return reply.ok() ? *reply : Json();
    };
    auto show = [&](const std::string& name) { return run({"show", name}); };
    std::vector<std::string> names = {"own"};
    for (int i = 1; i <= kSharedForks; ++i) names.push_back("s-" + std::to_string(i));
    struct Cleanup {
      const Forkctl& forkctl;
      const std::vector<std::string>& names;
      ~Cleanup() {
        for (const std::string& name : names) (void)forkctl.Run({"rm", name});
        (void)forkctl.Run({"rm", "tpl"});
      }
    } cleanup{forkctl, names};

    // The template: booted, its RAM filled, beating with its identity, then stood by.
    run({"create", "tpl", "--hypervisor", "qemu", "--import", template_dir});
    run({"start", "tpl"});
    const Vm tpl = ParseVm(show("tpl"), data_root);
    Result<Beat> booted = WaitForBeat(
        tpl.serial_log, [&](const Beat& b) { return b.number >= 3 && b.mac == tpl.mac; }, kBootTimeout);
    ASSERT_TRUE(booted.ok()) << booted.status().ToString() << "\n" << SerialLog(tpl) << forkd->Log();
    run({"standby", "tpl"});
    const std::string template_ram = data_root + "/volumes/" + tpl.id + "/mem.bin";
    Result<fe::test::Digest> ram_before = fe::test::ContentDigest(template_ram);
    ASSERT_TRUE(ram_before.ok()) << ram_before.status().ToString();

    // Eight shared forks in one request, and one with RAM of its own.
    const Json shared = run({"fork", "tpl", "--name", "s", "--count", std::to_string(kSharedForks), "--memory",
                             "shared", "--target-state", "Running"});
    ASSERT_TRUE(shared.contains("forks") && shared["forks"].size() == kSharedForks) << shared.dump();
    PrintPhases("shared fork tpl -> s-1", shared["forks"][0]);
    const Json own = run({"fork", "tpl", "--name", "own", "--target-state", "Running"});
    ASSERT_TRUE(own.contains("forks") && own["forks"].size() == 1) << own.dump();
    PrintPhases("private fork tpl -> own", own["forks"][0]);

    std::vector<Vm> forks;
    std::set<std::string> macs = {tpl.mac};
    for (const std::string& name : names) {
      const Json view = show(name);
      const Vm vm = ParseVm(view, data_root);
      ASSERT_EQ(vm.state, "Running") << name;
      const Json& memory = view.value("memory", Json::object());
      if (name == "own") {
        EXPECT_EQ(memory.value("mode", ""), "private");
      } else {
        EXPECT_EQ(memory.value("mode", ""), "shared") << view.dump();
        EXPECT_EQ(memory.value("shared_from", ""), tpl.id);
        EXPECT_EQ(memory.value("file", ""), template_ram);
      }
      EXPECT_TRUE(macs.insert(vm.mac).second) << name << " has a MAC another VM has: " << vm.mac;
      forks.push_back(vm);
    }
    // Each guest runs on with its own identity (the agent wrote it into that guest's RAM alone).
    for (const Vm& vm : forks) {
      Result<Beat> beat = BeatWithOwnIdentity(vm, 0);
      ASSERT_TRUE(beat.ok()) << vm.name << ": " << beat.status().ToString() << "\n" << SerialLog(vm);
    }
    // ... and its own randomness: no two guests print the same bytes for one beat number.
    std::map<int, std::set<std::string>> rand_by_beat;
    int compared = 0;
    for (const Vm& vm : forks) {
      const std::vector<Beat> beats = ReadBeats(vm.serial_log);
      for (const Beat& beat : beats) {
        if (beat.mac != vm.mac) continue;  // before its identity: it may still be the template's
        std::set<std::string>& seen = rand_by_beat[beat.number];
        compared += seen.empty() ? 0 : 1;
        EXPECT_TRUE(seen.insert(beat.rand).second) << vm.name << " beat " << beat.number << " repeats another's bytes";
      }
    }
    EXPECT_GT(compared, 0) << "no beat number printed by two forks";

    // Every fork reads all its RAM; then what each holds.
    for (const Vm& vm : forks) {
      Result<hypervisor::qemu::QmpClient> qmp =
          hypervisor::qemu::QmpClient::Connect(data_root + "/volumes/" + vm.id + "/qmp.sock", 30s);
      ASSERT_TRUE(qmp.ok()) << vm.name << ": " << qmp.status().ToString();
      Result<Json> saved =
          qmp->Execute("pmemsave", Json{{"val", 0}, {"size", 256 << 20}, {"filename", "/dev/null"}}, 120s);
      ASSERT_TRUE(saved.ok()) << vm.name << ": " << saved.status().ToString();
    }
    uint64_t shared_pss = 0;
    uint64_t own_pss = 0;
    for (const Vm& vm : forks) {
      const Json resident = show(vm.name).value("memory", Json::object()).value("resident", Json());
      ASSERT_TRUE(resident.is_object()) << vm.name << ": no resident memory in " << show(vm.name).dump();
      const uint64_t pss = resident.value("pss_bytes", uint64_t{0});
      std::printf("%s: pss %.1f MiB, private %.1f MiB (anonymous %.1f MiB), shared %.1f MiB\n", vm.name.c_str(),
                  pss / 1048576.0, resident.value("private_bytes", uint64_t{0}) / 1048576.0,
                  resident.value("anonymous_bytes", uint64_t{0}) / 1048576.0,
                  resident.value("shared_bytes", uint64_t{0}) / 1048576.0);
      (vm.name == "own" ? own_pss : shared_pss) += pss;
    }
    EXPECT_LT(shared_pss / kSharedForks, own_pss) << "a shared fork costs no less than a private one";

    // The template's file: unchanged, read-only, and the template cannot be restored under its forks.
    Result<fe::test::Digest> ram_after = fe::test::ContentDigest(template_ram);
    ASSERT_TRUE(ram_after.ok()) << ram_after.status().ToString();
    EXPECT_TRUE(*ram_after == *ram_before) << "a fork's writes reached the template's RAM file";
    struct stat st {};
    ASSERT_EQ(::stat(template_ram.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0444u);
    Result<Json> refused = forkctl.Run({"restore", "tpl"});
    ASSERT_FALSE(refused.ok()) << "the template was restored while 8 forks map its RAM";
    EXPECT_NE(refused.status().message().find("s-1"), std::string::npos) << refused.status().ToString();

    // kill -9 and a restart: the mappings are known again.
    forkd->Signal(SIGKILL);
    forkd->Wait();
    forkd.emplace(data_root, root + "/forkd.sock", root + "/forkd-2.log", options);
    start_forkd();
    if (HasFatalFailure()) return;
    EXPECT_EQ(show("s-3").value("memory", Json::object()).value("file", ""), template_ram);
    EXPECT_EQ(ParseVm(show("s-3"), data_root).state, "Running");
    EXPECT_FALSE(forkctl.Run({"restore", "tpl"}).ok()) << "the restarted forkd restored the template under its forks";

    // Stood by, a shared fork saves its RAM in full: its own again, and it runs on from it.
    const int s1_beats = ReadBeats(forks[1].serial_log).back().number;
    run({"standby", "s-1"});
    EXPECT_EQ(show("s-1").value("memory", Json::object()).value("mode", ""), "private");
    run({"restore", "s-1"});
    const Vm s1 = ParseVm(show("s-1"), data_root);
    Result<Beat> s1_on = BeatWithOwnIdentity(s1, s1_beats);
    EXPECT_TRUE(s1_on.ok()) << "s-1 after its standby: " << s1_on.status().ToString() << "\n" << SerialLog(s1);
    // A running shared fork forked in turn: its RAM goes into the child's snapshot in full.
    const Json grandchild = run({"fork", "s-2", "--name", "g", "--from-running", "--target-state", "Running"});
    ASSERT_TRUE(grandchild.contains("forks")) << grandchild.dump();
    PrintPhases("fork of the running shared fork s-2 -> g", grandchild["forks"][0]);
    names.push_back("g");
    const Vm g = ParseVm(show("g"), data_root);
    Result<Beat> g_on = BeatWithOwnIdentity(g, 0);
    EXPECT_TRUE(g_on.ok()) << "g: " << g_on.status().ToString() << "\n" << SerialLog(g);
    EXPECT_EQ(show("g").value("memory", Json::object()).value("mode", ""), "private");
    EXPECT_EQ(show("s-2").value("memory", Json::object()).value("mode", ""), "shared") << "s-2 runs on as it was";
    Result<Json> rm = forkctl.Run({"rm", "own", "g", "s-1", "s-2", "s-3", "s-4", "s-5", "s-6", "s-7", "s-8"});
    EXPECT_TRUE(rm.ok()) << rm.status().ToString();
    run({"restore", "tpl"});
    EXPECT_EQ(ParseVm(show("tpl"), data_root).state, "Running");
  });
  if (!skip.empty()) GTEST_SKIP() << skip;
  std::printf("shared-memory end-to-end test took %.1f s\n",
              std::chrono::duration<double>(Clock::now() - test_start).count());
}

// Issue #19: a busy guest with anonymous RAM (no memory_file, so no live path), forked through forkd
// with source_pause "background": QEMU saves its RAM while it runs. The guest keeps rewriting 32 MiB
// of its RAM (fe-guest-dirtier) through the save. Asserted: the source keeps its process and runs on
// with its own identity, its clock is set again after its pause, and the fork continues the guest
// from the snapshot with its own identity, clock and randomness (CheckPair).
TEST_F(VmForkEndToEndTest, ABusyGuestWithAnonymousRamIsForkedFromASnapshotSavedWhileItRuns) {
  if (std::string why = fe::test::GuestUnavailableReason(); !why.empty()) GTEST_SKIP() << why;
  FE_SCRATCH(scratch, fe::test::Scratch::Root(fe::test::ScratchFs::kXfs));
  const Clock::time_point test_start = Clock::now();
  std::string root;
  ASSERT_NO_FATAL_FAILURE(MakeRootWithGuest(scratch, "bg", root));
  const std::string template_dir = root + "/tpl";
  const std::string data_root = root + "/d";
  ASSERT_NO_FATAL_FAILURE(KeepGuestBusy(template_dir, /*anonymous_ram=*/true));

  std::string skip = fe::test::RunInNewNetworkNamespace([&] {
    WithForkd(root, [&](const Session& session) {
      auto run = [&](const std::vector<std::string>& args) { return session.Run(args); };
      auto show = [&](const std::string& name) { return session.Show(name); };
      struct Cleanup {
        const Forkctl& forkctl;
        ~Cleanup() { (void)forkctl.Run({"rm", "child", "src"}); }
      } cleanup{session.forkctl};
      Vm src;
      ASSERT_NO_FATAL_FAILURE(BootSource(session, "src", template_dir, src));

      const std::vector<Beat> src_beats = ReadBeats(src.serial_log);
      ASSERT_FALSE(src_beats.empty());
      const Beat before_fork = src_beats.back();
      const Json forked = run({"fork", "src", "--name", "child", "--from-running", "--source-pause", "background",
                               "--target-state", "Running"});
      ASSERT_TRUE(forked.contains("forks") && forked["forks"].size() == 1) << forked.dump();
      const Json& fork = forked["forks"][0];
      PrintPhases("background fork src -> child", fork);
      const Json& phases = fork["phases"];
      std::printf(
          "background fork: source stopped %.1f ms (filesystems frozen %.1f ms), snapshot written while it "
          "ran %.1f ms\n",
          phases.value("source_pause_us", int64_t{0}) / 1000.0,
          phases.value("filesystems_frozen_us", int64_t{0}) / 1000.0,
          phases.value("background_snapshot_us", int64_t{0}) / 1000.0);
      EXPECT_TRUE(fork.value("live", false)) << fork.dump();
      EXPECT_GT(phases.value("background_snapshot_us", int64_t{0}), 0) << fork.dump();
      // Its agent froze the guest (an initramfs: nothing on a disk to freeze) instead of forkd pausing
      // it: the freeze spans the clones and QEMU's preparation, the stop only QEMU's capture within it.
      EXPECT_GT(phases.value("filesystems_frozen_us", int64_t{0}), 0) << fork.dump();
      EXPECT_LT(phases.value("source_pause_us", int64_t{0}), phases.value("filesystems_frozen_us", int64_t{0}))
          << fork.dump();
      EXPECT_EQ(fork["phases"].value("source_standby_us", int64_t{-1}), 0) << fork.dump();
      EXPECT_EQ(fork.value("source_clock", ""), "set") << fork.dump();
      const Vm src_after = show("src");
      EXPECT_EQ(src_after.state, "Running");
      EXPECT_EQ(src_after.pid, src.pid) << "the source was paused, not restarted";
      const Vm child = show("child");
      ASSERT_EQ(child.state, "Running");
      EXPECT_NE(child.mac, src.mac);
      CheckPair(src, child, before_fork, {src, child});
      if (HasFatalFailure()) return;

      run({"rm", "child", "src"});
      for (const Vm& vm : {src, child}) {
        EXPECT_NE(::kill(vm.pid, 0), 0) << vm.name << "'s process " << vm.pid << " is still there";
      }
      EXPECT_EQ(engine::forkd::test::ListDir(data_root + "/volumes"), std::vector<std::string>{});
    });
  });
  if (!skip.empty()) GTEST_SKIP() << skip;
  std::printf("background-fork end-to-end test took %.1f s\n",
              std::chrono::duration<double>(Clock::now() - test_start).count());
}

}  // namespace
}  // namespace fe::e2e
