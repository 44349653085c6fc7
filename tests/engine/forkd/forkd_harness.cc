#include "tests/engine/forkd/forkd_harness.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <mutex>
#include <thread>

#include <httplib.h>

#include "engine/network/network_allocator.h"

extern char** environ;

namespace fe::engine::forkd::test {
namespace {

// With FE_API_REPLY_DIR set (ctest sets it), every reply is appended to <dir>/<pid>.jsonl, and
// openapi_replies.py checks them all against openapi.json after the API tests ran.
void RecordReply(const std::string& method, const std::string& path, const ApiResponse& response) {
  static const char* dir = std::getenv("FE_API_REPLY_DIR");
  if (dir == nullptr || response.status == 0) return;
  static std::mutex mutex;
  std::lock_guard lock(mutex);
  ::mkdir(dir, 0755);
  std::ofstream out(std::string(dir) + "/" + std::to_string(::getpid()) + ".jsonl", std::ios::app);
  out << Json{{"method", method},
              {"path", path},
              {"status", response.status},
              {"content_type", response.content_type},
              {"body", response.body}}
             .dump(-1, ' ', false, Json::error_handler_t::replace)
      << "\n";
}

ApiResponse ToResponse(const std::string& method, const std::string& path, const httplib::Result& result) {
  ApiResponse response;
  if (!result) {
    response.error = httplib::to_string(result.error());
    return response;
  }
  response.status = result->status;
  response.body = result->body;
  response.content_type = result->get_header_value("Content-Type");
  response.replayed = result->get_header_value("Idempotent-Replayed");
  response.json = Json::parse(response.body, nullptr, /*allow_exceptions=*/false);
  if (response.json.is_discarded()) response.json = nullptr;
  RecordReply(method, path, response);
  return response;
}

std::unique_ptr<httplib::Client> Connect(const std::string& socket) {
  // Debian's cpp-httplib sends without MSG_NOSIGNAL: a request racing a kill -9 of forkd writes to a
  // socket nobody reads, and the test must see that as a failed request, not die of SIGPIPE (it did,
  // once, in the dm-thin guest: exit status 141).
  static const bool kSigpipeIgnored = [] { return ::signal(SIGPIPE, SIG_IGN) != SIG_ERR; }();
  (void)kSigpipeIgnored;
  auto client = std::make_unique<httplib::Client>(socket);
  client->set_address_family(AF_UNIX);
  client->set_connection_timeout(std::chrono::seconds(10));
  client->set_read_timeout(std::chrono::seconds(300));
  client->set_write_timeout(std::chrono::seconds(60));
  return client;
}

std::string Replace(std::string text, const std::string& from, const std::string& to) {
  for (size_t at = text.find(from); at != std::string::npos; at = text.find(from, at + to.size())) {
    text.replace(at, from.size(), to);
  }
  return text;
}

// The fixtures were written for a source in /data/vm-1; point them at `dir` (at a path-component
// boundary only: /data/vm-10 is another VM's directory and stays).
std::string Retarget(std::string text, const std::string& dir) {
  text = Replace(std::move(text), "/data/vm-1/", dir + "/");
  return Replace(std::move(text), "/data/vm-1\"", dir + "\"");
}

Status Walk(const std::string& root, const std::string& relative, std::map<std::string, fe::test::Digest>* out) {
  std::string dir = relative.empty() ? root : root + "/" + relative;
  for (const std::string& name : ListDir(dir)) {
    std::string child = relative.empty() ? name : relative + "/" + name;
    struct stat st {};
    if (::lstat((root + "/" + child).c_str(), &st) != 0) return Status::FromErrno(errno, "lstat", root + "/" + child);
    if (S_ISDIR(st.st_mode)) {
      FE_RETURN_IF_ERROR(Walk(root, child, out));
    } else if (S_ISREG(st.st_mode)) {
      Result<fe::test::Digest> digest = fe::test::ContentDigest(root + "/" + child);
      if (!digest.ok()) return digest.status();
      (*out)[child] = *digest;
    }
  }
  return Status::Ok();
}

}  // namespace

std::string ForkdBinary() {
  const char* path = std::getenv("FE_FORKD");
  return path != nullptr ? path : FE_FORKD_BINARY;
}

std::string ForkctlBinary() {
  const char* path = std::getenv("FE_FORKCTL");
  return path != nullptr ? path : FE_FORKCTL_BINARY;
}

std::string FixturesDir() {
  const char* path = std::getenv("FE_CH_FIXTURES");
  return path != nullptr ? path : FE_CH_FIXTURES;
}

ApiResponse ApiClient::Get(const std::string& path) const {
  return ToResponse("GET", path, Connect(socket_path_)->Get(path));
}

ApiResponse ApiClient::Post(const std::string& path, const std::string& body) const {
  return ToResponse("POST", path, Connect(socket_path_)->Post(path, body, "application/json"));
}

ApiResponse ApiClient::Post(const std::string& path, const Json& body, const std::string& idempotency_key) const {
  const httplib::Headers headers{{"Idempotency-Key", idempotency_key}};
  return ToResponse("POST", path, Connect(socket_path_)->Post(path, headers, body.dump(), "application/json"));
}

ApiResponse ApiClient::Put(const std::string& path, const std::string& body, const std::string& content_type) const {
  return ToResponse("PUT", path, Connect(socket_path_)->Put(path, body, content_type));
}

ApiResponse ApiClient::Patch(const std::string& path, const Json& body) const {
  return ToResponse("PATCH", path, Connect(socket_path_)->Patch(path, body.dump(), "application/json"));
}

ApiResponse ApiClient::Delete(const std::string& path) const {
  return ToResponse("DELETE", path, Connect(socket_path_)->Delete(path));
}

ApiResponse ApiClient::Stream(const std::string& path, const std::function<bool(const Json&)>& on_line) const {
  ApiResponse response;
  std::string pending;
  bool stopped = false;
  httplib::Result result = Connect(socket_path_)
                               ->Get(
                                   path,
                                   [&](const httplib::Response& head) {
                                     response.status = head.status;
                                     response.content_type = head.get_header_value("Content-Type");
                                     return true;
                                   },
                                   [&](const char* data, size_t length) {
                                     pending.append(data, length);
                                     for (size_t end; (end = pending.find('\n')) != std::string::npos;) {
                                       const std::string line = pending.substr(0, end + 1);
                                       pending.erase(0, end + 1);
                                       response.body += line;
                                       const Json value = Json::parse(line, nullptr, /*allow_exceptions=*/false);
                                       if (response.status != 200 || value.is_discarded()) continue;
                                       if (!on_line(value)) {
                                         stopped = true;
                                         return false;
                                       }
                                     }
                                     return true;
                                   });
  response.body += pending;
  if (!result && !stopped) response.error = httplib::to_string(result.error());
  if (response.status != 200) {
    response.json = Json::parse(response.body, nullptr, /*allow_exceptions=*/false);
    if (response.json.is_discarded()) response.json = nullptr;
  }
  RecordReply("GET", path, response);
  return response;
}

std::unique_ptr<ForkdProcess> ForkdProcess::Router(std::string socket, std::string log_path,
                                                   std::vector<std::string> extra) {
  return std::make_unique<ForkdProcess>("", std::move(socket), std::move(log_path), std::move(extra));
}

ForkdProcess::ForkdProcess(std::string data_root, std::string socket, std::string log_path,
                           std::vector<std::string> extra)
    : data_root_(std::move(data_root)),
      socket_(std::move(socket)),
      log_path_(std::move(log_path)),
      extra_(std::move(extra)) {}

ForkdProcess::~ForkdProcess() {
  if (pid_ > 0) {
    Signal(SIGKILL);
    Wait();
  }
}

Status ForkdProcess::Start() {
  std::vector<std::string> args{ForkdBinary(), "--data-root", data_root_, "--socket", socket_};
  if (data_root_.empty()) args = {FE_FORKROUTER_BINARY, "--socket", socket_};
  if (!data_root_.empty() && std::find(extra_.begin(), extra_.end(), "--loop-pool") == extra_.end()) {
    args.insert(args.end(), {"--loop-pool", "none"});
  }
  args.insert(args.end(), extra_.begin(), extra_.end());
  args.insert(args.begin(), launcher_.begin(), launcher_.end());
  std::vector<char*> argv;
  for (std::string& arg : args) argv.push_back(arg.data());
  argv.push_back(nullptr);
  std::vector<std::string> variables = environment_;
  for (char** variable = environ; *variable != nullptr; ++variable) variables.emplace_back(*variable);
  std::vector<char*> envp;
  for (std::string& variable : variables) envp.push_back(variable.data());
  envp.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 1, log_path_.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  posix_spawn_file_actions_adddup2(&actions, 1, 2);
  // forkd blocks its signals itself; start it with none blocked whatever the test thread had.
  posix_spawnattr_t attributes;
  posix_spawnattr_init(&attributes);
  sigset_t empty;
  sigemptyset(&empty);
  posix_spawnattr_setsigmask(&attributes, &empty);
  posix_spawnattr_setflags(&attributes, POSIX_SPAWN_SETSIGMASK);
  pid_t pid = -1;
  // posix_spawnp: a launcher is found in PATH (forkd's own path is absolute).
  int error = ::posix_spawnp(&pid, argv[0], &actions, &attributes, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attributes);
  if (error != 0) return Status::FromErrno(error, "spawning", args.front());
  pid_ = pid;
  return Status::Ok();
}

Status ForkdProcess::WaitReady() {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (std::chrono::steady_clock::now() < deadline) {
    int status = 0;
    if (pid_ > 0 && ::waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return Status::Internal("forkd exited (wait status " + std::to_string(status) + ") before answering:\n" + Log());
    }
    if (client().Get("/v1/healthz").status == 200) return Status::Ok();
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return Status::Internal("forkd did not answer /v1/healthz within 60 s:\n" + Log());
}

void ForkdProcess::Signal(int signal) {
  if (pid_ > 0) ::kill(pid_, signal);
}

int ForkdProcess::Wait() {
  if (pid_ <= 0) return -1;
  int status = 0;
  while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
  }
  pid_ = -1;
  return status;
}

std::string ForkdProcess::Log() const {
  Result<std::string> text = fe::test::ReadFile(log_path_);
  return text.ok() ? *text : "(no log: " + text.status().ToString() + ")";
}

Status MakeGuestDir(const std::string& dir, uint64_t data_bytes) {
  for (const std::string& sub : {dir, dir + "/snapshot"}) {
    if (::mkdir(sub.c_str(), 0755) != 0) return Status::FromErrno(errno, "mkdir", sub);
  }
  for (const auto& [fixture, target] :
       {std::pair{"boot_config.json", "config.json"}, std::pair{"snapshot_config.json", "snapshot/config.json"}}) {
    Result<std::string> text = fe::test::ReadFile(FixturesDir() + "/" + fixture);
    if (!text.ok()) return text.status();
    FE_RETURN_IF_ERROR(fe::test::WriteFile(dir + "/" + target, Retarget(*text, dir)));
  }
  FE_RETURN_IF_ERROR(
      fe::test::WriteFile(dir + "/snapshot/state.json",
                          R"({"snapshots":{"_disk0":{"snapshot_data":{"disk_path":")" + dir + R"(/rootfs.raw"}}}})"));
  FE_RETURN_IF_ERROR(fe::test::WritePatternFile(dir + "/snapshot/memory-ranges", 256 * fe::test::kKiB, 7));
  FE_RETURN_IF_ERROR(fe::test::MakeSparseFile(dir + "/rootfs.raw", 64 * fe::test::kMiB + data_bytes,
                                              {{0, data_bytes / 2}, {32 * fe::test::kMiB, data_bytes - data_bytes / 2}},
                                              3));
  return fe::test::WriteFile(dir + "/vmlinux", "not a kernel: the API tests never boot");
}

Result<std::map<std::string, fe::test::Digest>> TreeDigests(const std::string& dir) {
  std::map<std::string, fe::test::Digest> digests;
  FE_RETURN_IF_ERROR(Walk(dir, "", &digests));
  return digests;
}

std::vector<std::string> ListDir(const std::string& dir) {
  std::vector<std::string> names;
  DIR* handle = ::opendir(dir.c_str());
  if (handle == nullptr) return names;
  while (dirent* entry = ::readdir(handle)) {
    std::string name = entry->d_name;
    if (name != "." && name != "..") names.push_back(name);
  }
  ::closedir(handle);
  std::sort(names.begin(), names.end());
  return names;
}

Result<std::vector<std::string>> LeasedIds(const std::string& data_root) {
  Result<std::set<std::string>> holders = network::LeaseHoldersOnDisk(data_root + "/network");
  if (!holders.ok()) return holders.status();
  return std::vector<std::string>(holders->begin(), holders->end());
}

}  // namespace fe::engine::forkd::test
