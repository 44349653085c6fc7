// A real etcd cluster (Debian's etcd-server) on loopback (or a test bridge) for the cluster tests: members started as
// processes with their data in a test directory, on free ports, killed and restarted at will.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "base/status.h"

namespace fe::test {

class EtcdCluster {
 public:
  // Starts `members` members in `dir`, listening on `host` (loopback, or a test bridge's address that
  // network namespaces reach), and waits until each answers /health; Unsupported (a reason to skip)
  // when no etcd binary is installed.
  static Result<std::unique_ptr<EtcdCluster>> Start(const std::string& dir, int members,
                                                    const std::string& host = "127.0.0.1");
  ~EtcdCluster();  // kills every member

  // "http://HOST:A,http://HOST:B,...": every member's client URL, as forkd takes them.
  std::string Endpoints() const;
  std::string ClientUrl(int member) const;
  // SIGKILL, and waits for the process.
  void Kill(int member);
  // Starts a killed member again on its data and ports; returns once it answers /health.
  Status Restart(int member);

 private:
  struct Member {
    std::string name, data_dir, log;
    int client_port = 0, peer_port = 0;
    pid_t pid = -1;
  };
  EtcdCluster() = default;
  Status Launch(Member& member, const std::string& initial_cluster);
  static Result<std::unique_ptr<EtcdCluster>> TryStart(const std::string& dir, int members, const std::string& host);
  // Unavailable when the member exited (its ports were taken), TimedOut when it is still not healthy.
  Status WaitHealthy(Member& member, std::chrono::steady_clock::time_point deadline);
  static std::string LogTail(const std::string& log);

  std::vector<Member> members_;
  std::string initial_cluster_;
  std::string host_;
};

}  // namespace fe::test
