#include "tests/support/etcd_cluster.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <fstream>
#include <iterator>
#include <thread>

#include <httplib.h>

#include "tests/support/tcp_port.h"

extern char** environ;

namespace fe::test {

Result<std::unique_ptr<EtcdCluster>> EtcdCluster::Start(const std::string& dir, int members, const std::string& host) {
  if (::access("/usr/bin/etcd", X_OK) != 0) return Status::Unsupported("no /usr/bin/etcd (Debian's etcd-server)");
  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) return Status::FromErrno(errno, "mkdir", dir);
  // A member that could not bind its ports (another test's server took one) exits at once; the
  // cluster is then made again on fresh ports in a fresh directory rather than failing the test.
  constexpr int kAttempts = 3;
  Status last = Status::Ok();
  for (int attempt = 0; attempt < kAttempts; ++attempt) {
    const std::string attempt_dir = dir + "/attempt-" + std::to_string(attempt);
    if (::mkdir(attempt_dir.c_str(), 0700) != 0) return Status::FromErrno(errno, "mkdir", attempt_dir);
    Result<std::unique_ptr<EtcdCluster>> cluster = TryStart(attempt_dir, members, host);
    if (cluster.ok() || cluster.status().code() != ErrorCode::kUnavailable) return cluster;
    last = cluster.status();
  }
  return last;
}

Result<std::unique_ptr<EtcdCluster>> EtcdCluster::TryStart(const std::string& dir, int members,
                                                           const std::string& host) {
  std::unique_ptr<EtcdCluster> cluster(new EtcdCluster());
  cluster->host_ = host;
  std::string initial_cluster;
  for (int i = 0; i < members; ++i) {
    Member member;
    member.name = "m" + std::to_string(i);
    member.data_dir = dir + "/" + member.name;
    member.log = dir + "/" + member.name + ".log";
    member.client_port = FreeTcpPort();
    member.peer_port = FreeTcpPort();
    if (member.client_port <= 0 || member.peer_port <= 0) return Status::Io("no free TCP port for etcd");
    if (!initial_cluster.empty()) initial_cluster += ",";
    initial_cluster += member.name + "=http://" + host + ":" + std::to_string(member.peer_port);
    cluster->members_.push_back(member);
  }
  cluster->initial_cluster_ = initial_cluster;
  for (Member& member : cluster->members_) FE_RETURN_IF_ERROR(cluster->Launch(member, initial_cluster));
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  for (Member& member : cluster->members_) FE_RETURN_IF_ERROR(cluster->WaitHealthy(member, deadline));
  return cluster;
}

Status EtcdCluster::WaitHealthy(Member& member, std::chrono::steady_clock::time_point deadline) {
  httplib::Client client(host_, member.client_port);
  client.set_connection_timeout(1, 0);
  for (;;) {
    httplib::Result health = client.Get("/health");
    if (health && health->status == 200 && health->body.find("\"true\"") != std::string::npos) return Status::Ok();
    int status = 0;
    if (::waitpid(member.pid, &status, WNOHANG) == member.pid) {
      member.pid = -1;
      return Status::Unavailable("etcd member " + member.name +
                                 " exited before it was healthy: " + LogTail(member.log));
    }
    if (std::chrono::steady_clock::now() > deadline) {
      return Status::TimedOut("etcd member " + member.name + " never became healthy: " + LogTail(member.log));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

Status EtcdCluster::Restart(int member) {
  Member& restarted = members_.at(member);
  if (restarted.pid > 0) return Status::FailedPrecondition("etcd member " + restarted.name + " is running");
  FE_RETURN_IF_ERROR(Launch(restarted, initial_cluster_));
  return WaitHealthy(restarted, std::chrono::steady_clock::now() + std::chrono::seconds(30));
}

Status EtcdCluster::Launch(Member& member, const std::string& initial_cluster) {
  const std::string client_url = "http://" + host_ + ":" + std::to_string(member.client_port);
  const std::string peer_url = "http://" + host_ + ":" + std::to_string(member.peer_port);
  std::vector<std::string> args{
      "/usr/bin/etcd", "--name=" + member.name, "--data-dir=" + member.data_dir, "--listen-client-urls=" + client_url,
      "--advertise-client-urls=" + client_url, "--listen-peer-urls=" + peer_url,
      "--initial-advertise-peer-urls=" + peer_url, "--initial-cluster=" + initial_cluster,
      "--initial-cluster-state=new", "--initial-cluster-token=forkengine-test",
      // Short elections: the tests kill members and wait for a new leader.
      "--heartbeat-interval=50", "--election-timeout=500", "--logger=zap", "--log-level=warn"};
  std::vector<char*> argv;
  for (std::string& arg : args) argv.push_back(arg.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  ::posix_spawn_file_actions_init(&actions);
  ::posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  ::posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, member.log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  ::posix_spawn_file_actions_adddup2(&actions, STDOUT_FILENO, STDERR_FILENO);
  const int error = ::posix_spawn(&member.pid, argv[0], &actions, nullptr, argv.data(), environ);
  ::posix_spawn_file_actions_destroy(&actions);
  if (error != 0) return Status::FromErrno(error, "posix_spawn", "/usr/bin/etcd");
  return Status::Ok();
}

EtcdCluster::~EtcdCluster() {
  for (int i = 0; i < static_cast<int>(members_.size()); ++i) Kill(i);
}

void EtcdCluster::Kill(int member) {
  Member& killed = members_.at(member);
  if (killed.pid <= 0) return;
  ::kill(killed.pid, SIGKILL);
  int status = 0;
  ::waitpid(killed.pid, &status, 0);
  killed.pid = -1;
}

std::string EtcdCluster::LogTail(const std::string& log) {
  constexpr std::streamoff kTail = 2000;
  std::ifstream in(log, std::ios::binary | std::ios::ate);
  if (!in) return "(no log at " + log + ")";
  const std::streamoff size = in.tellg();
  in.seekg(size > kTail ? size - kTail : 0);
  std::string tail((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return "(" + log + ") " + tail;
}

std::string EtcdCluster::ClientUrl(int member) const {
  return "http://" + host_ + ":" + std::to_string(members_.at(member).client_port);
}

std::string EtcdCluster::Endpoints() const {
  std::string endpoints;
  for (int i = 0; i < static_cast<int>(members_.size()); ++i) endpoints += (i == 0 ? "" : ",") + ClientUrl(i);
  return endpoints;
}

}  // namespace fe::test
