// A forkd child process for the benchmarks (or another program: forkrouter, etcd): spawned from the
// built binary on a data root and a socket, waited for until GET /v1/healthz answers, stopped with
// SIGTERM (and reaped) at the end.
#pragma once

#include <functional>

#include <sys/types.h>

#include <string>
#include <vector>

#include "base/status.h"

namespace fe::bench {

class ForkdDaemon {
 public:
  ForkdDaemon() = default;
  ForkdDaemon(const ForkdDaemon&) = delete;
  ForkdDaemon& operator=(const ForkdDaemon&) = delete;
  ~ForkdDaemon();  // Stop(), errors ignored

  // Spawns `binary --data-root D --socket S args...` with its output appended to `log_path`, then
  // polls healthz for up to 60 s; an error naming the log when forkd exits or never answers.
  Status Start(const std::string& binary, const std::string& data_root, const std::string& socket,
               const std::vector<std::string>& args, const std::string& log_path);
  // Any program (forkrouter, etcd): spawns `argv` with its output appended to `log_path`, then polls
  // `ready` for up to 60 s.
  Status Launch(const std::vector<std::string>& argv, const std::string& log_path, const std::function<bool()>& ready);
  // SIGKILL and reap: a crash, for the benchmarks that measure what follows one.
  void Kill();
  // Whether GET /v1/healthz answers 200 on the Unix socket `socket`.
  static bool Healthy(const std::string& socket);
  // SIGTERM and wait; an error when forkd did not exit 0.
  Status Stop();

 private:
  pid_t pid_ = -1;
  std::string log_path_;
};

}  // namespace fe::bench
