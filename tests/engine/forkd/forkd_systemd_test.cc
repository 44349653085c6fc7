// forkd under systemd (packaging/systemd/, engine/forkd/service_manager.h), tested with systemd's own
// tools since these machines do not run systemd as PID 1: the units pass `systemd-analyze verify`;
// socket activation through `systemd-socket-activate` (forkd serves the socket it is handed and leaves
// it to systemd); readiness and stopping reach a test NOTIFY_SOCKET; log lines carry journald's
// priority prefixes when stderr is journald's stream.
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <fstream>
#include <regex>
#include <sstream>

#include "base/process.h"
#include "base/unique_fd.h"
#include "tests/engine/forkd/forkd_test_fixture.h"

namespace fe::engine::forkd::test {
namespace {

std::string UnitText(const std::string& name) {
  std::ifstream in(std::string(FE_SYSTEMD_UNITS) + "/" + name);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// `systemd-analyze verify` of the two units written to `dir`: its exit status and everything it said.
ProcessResult Verify(const std::string& dir, const std::string& service_text) {
  EXPECT_TRUE(fe::test::WriteFile(dir + "/forkd.service", service_text).ok());
  EXPECT_TRUE(fe::test::WriteFile(dir + "/forkd.socket", UnitText("forkd.socket")).ok());
  Result<ProcessResult> verified =
      RunProcess({"systemd-analyze", "verify", dir + "/forkd.service", dir + "/forkd.socket"});
  EXPECT_TRUE(verified.ok()) << verified.status().ToString();
  return verified.ok() ? *verified : ProcessResult{};
}

// The unit as installed, but starting the forkd built here (verify checks that ExecStart runs).
std::string ServiceForThisBuild() {
  return std::regex_replace(UnitText("forkd.service"), std::regex("ExecStart=/usr/bin/forkd"),
                            "ExecStart=" + ForkdBinary());
}

class ForkdSystemdTest : public ForkdTest {
 protected:
  // A datagram socket standing in for systemd's notification socket.
  UniqueFd BindNotifySocket(const std::string& path) {
    UniqueFd fd(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    EXPECT_TRUE(fd.valid());
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::strncpy(address.sun_path, path.c_str(), sizeof(address.sun_path) - 1);
    EXPECT_EQ(::bind(fd.get(), reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0) << std::strerror(errno);
    timeval timeout{60, 0};  // forkd's start under ASan, calibration included: generous
    ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
    return fd;
  }

  // Connects to (a stream) or sends a byte to (a datagram socket) `path` once something has bound
  // it, within 10 s: what wakes systemd-socket-activate.
  static bool Knock(const std::string& path, int type) {
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::strncpy(address.sun_path, path.c_str(), sizeof(address.sun_path) - 1);
    for (int attempt = 0; attempt < 1000; ++attempt) {
      UniqueFd fd(::socket(AF_UNIX, type | SOCK_CLOEXEC, 0));
      const bool knocked =
          type == SOCK_STREAM
              ? ::connect(fd.get(), reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0
              : ::sendto(fd.get(), "x", 1, 0, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 1;
      if (knocked) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return false;
  }

  static std::string Receive(int fd) {
    char buffer[4096];
    const ssize_t got = ::recv(fd, buffer, sizeof(buffer), 0);
    return got > 0 ? std::string(buffer, static_cast<size_t>(got))
                   : std::string("(nothing: ") + std::strerror(errno) + ")";
  }
};

TEST_F(ForkdSystemdTest, TheUnitsVerifyCleanlyWithNotifyReadinessAndKillModeProcess) {
  const std::string service = UnitText("forkd.service");
  EXPECT_NE(service.find("\nType=notify\n"), std::string::npos) << "readiness comes from sd_notify";
  EXPECT_NE(service.find("\nKillMode=process\n"), std::string::npos)
      << "stopping forkd must not kill the VMs in its control group";
  EXPECT_NE(service.find("\nRestart=on-failure\n"), std::string::npos);
  const std::string socket = UnitText("forkd.socket");
  EXPECT_NE(socket.find("\nSocketMode=0660\n"), std::string::npos);
  EXPECT_NE(socket.find("\nSocketGroup=forkengine\n"), std::string::npos);

  const std::string units_dir = temp_->Sub("units");
  ASSERT_EQ(::mkdir(units_dir.c_str(), 0755), 0);
  ProcessResult clean = Verify(units_dir, ServiceForThisBuild());
  EXPECT_EQ(clean.exit_code, 0) << clean.output;
  EXPECT_EQ(clean.output, "") << "systemd-analyze verify has something to say about the units";

  // The same check catches a unit systemd would only half understand.
  const std::string broken_dir = temp_->Sub("broken");
  ASSERT_EQ(::mkdir(broken_dir.c_str(), 0755), 0);
  ProcessResult broken =
      Verify(broken_dir, std::regex_replace(ServiceForThisBuild(), std::regex("Type=notify"), "Type=notifying"));
  EXPECT_NE(broken.output.find("Failed to parse service type"), std::string::npos) << broken.output;
}

TEST_F(ForkdSystemdTest, ASocketActivatedForkdServesThePassedSocketAndLeavesItToSystemd) {
  const std::string activated = temp_->Sub("activated.sock");
  // systemd-socket-activate binds the socket, waits for the first connection and then execs forkd in
  // its place with LISTEN_FDS=1. forkd is told the same path as --socket: had it bound one of its
  // own, it would have found this one answering and refused to start.
  forkd_ = std::make_unique<ForkdProcess>(data_root_, activated, temp_->Sub("forkd.log"));
  forkd_->SetLauncher({"systemd-socket-activate", "--listen=" + activated});
  FE_ASSERT_OK(forkd_->Start());
  FE_ASSERT_OK(forkd_->WaitReady());
  ApiResponse health = ApiClient(activated).Get("/v1/healthz");
  EXPECT_EQ(health.status, 200) << health.error << log();
  EXPECT_TRUE(LogEventuallyContains("forkd listening on unix:" + activated)) << log();

  forkd_->Signal(SIGTERM);
  const int status = forkd_->Wait();
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status << log();
  struct stat st {};
  ASSERT_EQ(::lstat(activated.c_str(), &st), 0) << "forkd removed the socket systemd owns";
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
}

TEST_F(ForkdSystemdTest, SocketsForkdCannotServeAreRefusedNamingWhatItExpects) {
  // Two sockets: forkd.socket was edited to listen twice.
  const std::string first = temp_->Sub("first.sock");
  ForkdProcess two(data_root_, first, temp_->Sub("two.log"));
  two.SetLauncher({"systemd-socket-activate", "--listen=" + first, "--listen=" + temp_->Sub("second.sock")});
  FE_ASSERT_OK(two.Start());
  // The first connection makes systemd-socket-activate exec forkd (once it has bound the socket).
  ASSERT_TRUE(Knock(first, SOCK_STREAM)) << two.Log();
  EXPECT_TRUE(WIFEXITED(two.Wait()));
  EXPECT_NE(two.Log().find("systemd passed 2 sockets; forkd.socket must listen on exactly one Unix stream socket"),
            std::string::npos)
      << two.Log();

  // A datagram socket: not a stream forkd can serve HTTP on.
  const std::string datagram = temp_->Sub("datagram.sock");
  ForkdProcess dgram(data_root_, datagram, temp_->Sub("dgram.log"));
  dgram.SetLauncher({"systemd-socket-activate", "--datagram", "--listen=" + datagram});
  FE_ASSERT_OK(dgram.Start());
  ASSERT_TRUE(Knock(datagram, SOCK_DGRAM)) << dgram.Log();
  const int status = dgram.Wait();
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 1) << status << dgram.Log();
  EXPECT_NE(dgram.Log().find("the socket systemd passed (fd 3) is not a listening Unix stream socket"),
            std::string::npos)
      << dgram.Log();
}

TEST_F(ForkdSystemdTest, ReadinessAndStoppingReachTheNotifySocket) {
  const std::string notify_path = temp_->Sub("notify");
  UniqueFd notify = BindNotifySocket(notify_path);
  forkd_ = std::make_unique<ForkdProcess>(data_root_, socket_, temp_->Sub("forkd.log"));
  forkd_->SetEnvironment({"NOTIFY_SOCKET=" + notify_path});
  FE_ASSERT_OK(forkd_->Start());

  const std::string ready = Receive(notify.get());
  EXPECT_NE(ready.find("READY=1"), std::string::npos) << ready << log();
  EXPECT_NE(ready.find("STATUS=serving on unix:" + socket_), std::string::npos) << ready;
  EXPECT_EQ(api().Get("/v1/healthz").status, 200) << "READY=1 came before the socket served";

  forkd_->Signal(SIGTERM);
  const std::string stopping = Receive(notify.get());
  EXPECT_NE(stopping.find("STOPPING=1"), std::string::npos) << stopping << log();
  const int status = forkd_->Wait();
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status << log();
}

TEST_F(ForkdSystemdTest, UnderJournaldLogLinesCarryPrioritiesSoErrorsCanBeFiltered) {
  // journald tells a service its stderr is the journal by JOURNAL_STREAM=<device>:<inode> of it.
  const std::string log_path = temp_->Sub("journal.log");
  FE_ASSERT_OK(fe::test::WriteFile(log_path, ""));
  struct stat st {};
  ASSERT_EQ(::stat(log_path.c_str(), &st), 0);
  const std::string stream = "JOURNAL_STREAM=" + std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino);

  ForkdProcess failing(data_root_, socket_, log_path, {"--listen-tcp", "127.0.0.1:0"});  // no --token-file
  failing.SetEnvironment({stream});
  FE_ASSERT_OK(failing.Start());
  EXPECT_NE(failing.Wait(), 0);
  EXPECT_NE(failing.Log().find("<2>critical --listen-tcp requires --token-file"), std::string::npos) << failing.Log();

  ForkdProcess serving(data_root_, socket_, log_path);
  serving.SetEnvironment({stream});
  FE_ASSERT_OK(serving.Start());
  FE_ASSERT_OK(serving.WaitReady());
  serving.Signal(SIGTERM);
  serving.Wait();
  std::istringstream lines(serving.Log());
  int info_lines = 0;
  for (std::string line; std::getline(lines, line);) {
    EXPECT_TRUE(std::regex_search(line, std::regex("^<[2-7]>"))) << "no priority: " << line;
    if (line.rfind("<6>info ", 0) == 0) ++info_lines;
  }
  EXPECT_GT(info_lines, 2) << serving.Log();

  // Without the journal, the plain format: a timestamp first.
  StartForkd();
  EXPECT_TRUE(LogEventuallyContains("forkd listening"));
  EXPECT_TRUE(std::regex_search(log(), std::regex("^\\d{4}-\\d\\d-\\d\\dT"))) << log();
}

}  // namespace
}  // namespace fe::engine::forkd::test
