// Issue #23's idle standby on real guests: forkd's own lifecycle keeper, reading the VMMs' CPU time
// from /proc, stands by a QEMU guest that went idle (it stops its counter after 5 beats) and leaves a
// busy one (its counter ticking 5 times a second) running; a restore brings the idle one back on its
// own address. QEMU under TCG in a network namespace of the test's own (tests/e2e/vm_fork_fixture.h).
// Label e2e.
#include "tests/e2e/vm_fork_fixture.h"

namespace fe::e2e {
namespace {

// Under TCG an idle guest's VMM uses 1-3% of a CPU in a second, 1.7% on average, and a guest beating
// 5 times a second 12-15% (measured through forkd on this machine): 5% parts them with room on a
// loaded CI machine. Under KVM an idle VMM uses far less, and forkd's default is 2%.
constexpr char kIdleCpuPercent[] = "5";
constexpr auto kStandbyTimeout = 90s;

// `pid`'s CPU use, in percent of one CPU, over `period`.
double CpuPercentOver(pid_t pid, std::chrono::milliseconds period) {
  Result<engine::vm::ProcStat> before = engine::vm::ReadProcStat(pid);
  std::this_thread::sleep_for(period);
  Result<engine::vm::ProcStat> after = engine::vm::ReadProcStat(pid);
  if (!before.ok() || !after.ok()) return -1;
  const double ticks = static_cast<double>(after->cpu_ticks - before->cpu_ticks);
  return 100.0 * ticks / static_cast<double>(::sysconf(_SC_CLK_TCK)) / std::chrono::duration<double>(period).count();
}

TEST_F(VmForkEndToEndTest, ForkdStandsAnIdleGuestByLeavesABusyOneRunningAndARestoreBringsItBack) {
  if (std::string why = fe::test::GuestUnavailableReason(); !why.empty()) GTEST_SKIP() << why;
  FE_SCRATCH(scratch, fe::test::Scratch::Root(fe::test::ScratchFs::kXfs));
  std::string root;
  ASSERT_NO_FATAL_FAILURE(MakeRootWithGuest(scratch, "idle", root));
  const std::string idle_template = root + "/tpl-idle";
  ASSERT_EQ(::mkdir(idle_template.c_str(), 0755), 0) << std::strerror(errno);
  Status made = MakeForkGuest(idle_template, 256, FE_FORKAGENT, FE_GUEST_DIRTIER);
  ASSERT_TRUE(made.ok()) << made.ToString();
  ASSERT_NO_FATAL_FAILURE(IdleAfterBeats(idle_template, 5));
  std::string skip = fe::test::RunInNewNetworkNamespace([&] {
    WithForkd(root,
              [&](const Session& session) {
                struct Cleanup {
                  const Forkctl& forkctl;
                  ~Cleanup() {
                    for (const char* name : {"busy", "idle"}) (void)forkctl.Run({"rm", name});
                  }
                } cleanup{session.forkctl};
                Vm busy, idle;
                ASSERT_NO_FATAL_FAILURE(BootSource(session, "busy", root + "/tpl", busy));
                ASSERT_NO_FATAL_FAILURE(BootSource(session, "idle", idle_template, idle));
                Result<Beat> last = WaitForBeat(
                    idle.serial_log, [](const Beat& beat) { return beat.number == 4; }, kBeatTimeout);
                ASSERT_TRUE(last.ok()) << last.status().ToString() << SerialLog(idle);
                std::printf("VMM CPU before the policy: busy %.1f%%, idle %.1f%% of one CPU over 2 s\n",
                            CpuPercentOver(busy.pid, 2s), CpuPercentOver(idle.pid, 2s));

                for (const char* name : {"busy", "idle"}) session.Run({"update", name, "--idle-standby", "3"});
                const Clock::time_point policy_set = Clock::now();
                Json idle_view;
                while (Clock::now() - policy_set < kStandbyTimeout) {
                  idle_view = session.Run({"show", "idle"});
                  if (idle_view.value("state", "") != "Running") break;
                  std::this_thread::sleep_for(500ms);
                }
                ASSERT_EQ(idle_view.value("state", ""), "Standby") << idle_view.dump() << session.forkd.Log();
                std::printf("idle stood by %.1f s after its idle_standby_s of 3 was set\n",
                            std::chrono::duration<double>(Clock::now() - policy_set).count());
                EXPECT_TRUE(idle_view["lifecycle"]["stood_by_idle_at"].is_string()) << idle_view.dump();
                EXPECT_FALSE(idle_view.contains("process") && idle_view["process"].is_object()) << "its VMM is gone";

                // The busy one was watched as long, and is judged over one more window: it runs on.
                std::this_thread::sleep_for(6s);
                const Json busy_view = session.Run({"show", "busy"});
                EXPECT_EQ(busy_view.value("state", ""), "Running") << busy_view.dump();
                EXPECT_TRUE(busy_view["lifecycle"]["stood_by_idle_at"].is_null()) << busy_view.dump();
                EXPECT_EQ(session.Show("busy").pid, busy.pid);

                // A restore brings the idle guest back, on its own address.
                const Json restored = session.Run({"restore", "idle"});
                EXPECT_EQ(restored.value("state", ""), "Running") << restored.dump();
                const Vm back = session.Show("idle");
                EXPECT_EQ(back.ipv4, idle.ipv4);
                EXPECT_EQ(back.mac, idle.mac);
                Status pinged = Ping(back.ipv4);
                EXPECT_TRUE(pinged.ok()) << pinged.ToString() << SerialLog(back);
              },
              {"--idle-cpu-percent", kIdleCpuPercent});
  });
  if (!skip.empty()) GTEST_SKIP() << skip;
}

}  // namespace
}  // namespace fe::e2e
