// Test harness for forkd's API tests: a real forkd process (the built binary, spawned with a temp
// data root and socket), a small HTTP client over its Unix socket, and a real-format Cloud
// Hypervisor guest directory to import. These tests link no server code: they see forkd only as a
// client would.
#pragma once

#include <sys/types.h>

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/status.h"
#include "tests/support/file_util.h"
#include "tests/support/tcp_port.h"

namespace fe::engine::forkd::test {

using Json = nlohmann::json;

struct ApiResponse {
  int status = 0;  // 0: no response (the transport error is in `error`)
  std::string body;
  Json json;  // parsed body; null when it is not JSON
  std::string content_type;
  std::string replayed;  // the Idempotent-Replayed header ("true" on a replay)
  std::string error;
};

// The forkd binary the tests spawn and the Cloud Hypervisor fixtures they import: as built, or what
// $FE_FORKD and $FE_CH_FIXTURES name (a QEMU test guest holds them elsewhere).
std::string ForkdBinary();
std::string FixturesDir();
// The built forkctl ($FE_FORKCTL overrides it: tests running in a guest), for what users run it for.
std::string ForkctlBinary();

// One request per connection, so one client may be used from many threads.
class ApiClient {
 public:
  explicit ApiClient(std::string socket_path) : socket_path_(std::move(socket_path)) {}
  ApiResponse Get(const std::string& path) const;
  ApiResponse Post(const std::string& path, const std::string& body) const;
  ApiResponse Post(const std::string& path, const Json& body) const { return Post(path, body.dump()); }
  // With an Idempotency-Key header.
  ApiResponse Post(const std::string& path, const Json& body, const std::string& idempotency_key) const;
  ApiResponse Delete(const std::string& path) const;
  ApiResponse Patch(const std::string& path, const Json& body) const;
  ApiResponse Put(const std::string& path, const std::string& body, const std::string& content_type) const;
  // GET of a newline-delimited JSON stream (GET /v1/events): each line, parsed, goes to `on_line`
  // until it returns false or the server ends the stream. `body` holds the lines read (so they are
  // recorded and checked against the document); `json` stays null.
  ApiResponse Stream(const std::string& path, const std::function<bool(const Json&)>& on_line) const;

 private:
  std::string socket_path_;
};

// A forkd child process. The destructor kills (SIGKILL) and reaps it if it still runs.
class ForkdProcess {
 public:
  // Spawns forkd with --data-root, --socket, `extra` arguments and --loop-pool none unless `extra`
  // names a loop pool; its output goes to `log_path`.
  ForkdProcess(std::string data_root, std::string socket, std::string log_path, std::vector<std::string> extra = {});
  // forkrouter instead (engine/router): --socket and `extra` arguments, no data root.
  static std::unique_ptr<ForkdProcess> Router(std::string socket, std::string log_path, std::vector<std::string> extra);
  ForkdProcess(const ForkdProcess&) = delete;
  ForkdProcess& operator=(const ForkdProcess&) = delete;
  ~ForkdProcess();

  // Before Start: a program forkd is started through (its argv, forkd's appended: systemd's
  // systemd-socket-activate, say), and "NAME=value" variables added to forkd's environment.
  void SetLauncher(std::vector<std::string> launcher) { launcher_ = std::move(launcher); }
  void SetEnvironment(std::vector<std::string> variables) { environment_ = std::move(variables); }
  Status Start();
  // Polls GET /v1/healthz until it answers 200; an error (with the log) when forkd exits first or
  // does not answer within a generous bound.
  Status WaitReady();
  void Signal(int signal);
  // Waits for the process to exit; its wait status.
  int Wait();
  bool running() const { return pid_ > 0; }
  pid_t pid() const { return pid_; }
  std::string Log() const;
  ApiClient client() const { return ApiClient(socket_); }
  const std::string& socket() const { return socket_; }
  const std::string& data_root() const { return data_root_; }

 private:
  std::string data_root_, socket_, log_path_;
  std::vector<std::string> extra_, launcher_, environment_;
  pid_t pid_ = -1;
};

// A Cloud Hypervisor guest directory in the real format at `dir`: config.json (VmConfig), snapshot/
// (config.json, state.json, memory-ranges), a sparse rootfs.raw with data, vmlinux. The fixture
// configs' /data/vm-1 paths are made to point at `dir`. `data_bytes` of written data go into the disk.
Status MakeGuestDir(const std::string& dir, uint64_t data_bytes = 1 << 20);

// Every regular file under `dir` (relative path -> size and content hash): checksums of a tree.
Result<std::map<std::string, fe::test::Digest>> TreeDigests(const std::string& dir);
// Names in `dir` (not "." / ".."), sorted.
std::vector<std::string> ListDir(const std::string& dir);
// Instance ids holding a lease in <data_root>/network (network.json and its journal).
Result<std::vector<std::string>> LeasedIds(const std::string& data_root);

}  // namespace fe::engine::forkd::test
