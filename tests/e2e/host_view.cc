#include "tests/e2e/host_view.h"

#include <dirent.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "base/process.h"
#include "tests/support/file_util.h"

namespace fe::e2e {
namespace {

namespace fs = std::filesystem;

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

// The command line's arguments.
std::vector<std::string> CommandLine(pid_t pid) {
  Result<std::string> raw = fe::test::ReadFile("/proc/" + std::to_string(pid) + "/cmdline");
  std::vector<std::string> args;
  if (!raw.ok()) return args;
  std::string arg;
  for (char c : *raw) {
    if (c == '\0') {
      args.push_back(std::move(arg));
      arg.clear();
    } else {
      arg.push_back(c);
    }
  }
  return args;
}

// Socket inode -> path, from the process's namespace's /proc/<pid>/net/unix.
std::map<std::string, std::string> UnixSocketPaths(pid_t pid) {
  std::map<std::string, std::string> paths;
  std::ifstream in("/proc/" + std::to_string(pid) + "/net/unix");
  std::string line;
  std::getline(in, line);  // header
  while (std::getline(in, line)) {
    std::istringstream words(line);
    std::vector<std::string> fields;
    for (std::string word; words >> word;) fields.push_back(word);
    if (fields.size() >= 8) paths[fields[6]] = fields[7];
  }
  return paths;
}

}  // namespace

Result<Json> Forkctl::Run(const std::vector<std::string>& args) const {
  std::vector<std::string> argv = {binary_, "--socket", socket_, "--json"};
  argv.insert(argv.end(), args.begin(), args.end());
  std::string command;
  for (const std::string& arg : argv) command += (command.empty() ? "" : " ") + arg;
  Result<ProcessResult> run = RunProcess(argv);
  if (!run.ok()) return run.status().Annotate(command);
  if (run->exit_code != 0) {
    return Status::Internal(command + " exited " + std::to_string(run->exit_code) + ": " + run->output);
  }
  if (run->output.empty()) return Json();  // a reply without a body (rm: 204)
  Json json = Json::parse(run->output, nullptr, false);
  if (json.is_discarded()) return Status::Internal(command + " printed no JSON: " + run->output);
  return json;
}

Status Ping(const std::string& ipv4) {
  Result<ProcessResult> ping = RunProcess({"/bin/busybox", "ping", "-c", "1", "-W", "5", ipv4});
  if (!ping.ok()) return ping.status();
  if (ping->exit_code != 0) return Status::Internal("ping " + ipv4 + ": " + ping->output);
  return Status::Ok();
}

bool BridgeLearned(const std::string& bridge, const std::string& mac, const std::string& tap) {
  Result<ProcessResult> fdb = RunProcess({"bridge", "fdb", "show", "br", bridge});
  if (!fdb.ok()) return false;
  for (const std::string& line : Lines(fdb->output)) {
    if (line.rfind(mac + " dev " + tap + " ", 0) == 0) return true;
  }
  return false;
}

std::vector<std::string> NetworkDevices() {
  // Through netlink (`ip`): /sys/class/net shows the namespace sysfs was mounted in, not this thread's.
  std::vector<std::string> names;
  Result<ProcessResult> links = RunProcess({"ip", "-o", "link", "show"});
  if (!links.ok()) return {"(ip link failed: " + links.status().ToString() + ")"};
  for (const std::string& line : Lines(links->output)) {
    // "3: febr-e2e: <BROADCAST,...>" or "4: fe0a640002@if3: ..."
    const size_t start = line.find(": ");
    const size_t end = start == std::string::npos ? start : line.find_first_of(":@", start + 2);
    if (end != std::string::npos) names.push_back(line.substr(start + 2, end - start - 2));
  }
  return names;
}

std::set<std::string> HeldResources(pid_t pid) {
  std::set<std::string> held;
  const std::string proc = "/proc/" + std::to_string(pid);
  const std::map<std::string, std::string> sockets = UnixSocketPaths(pid);
  std::error_code error;
  for (const fs::directory_entry& fd : fs::directory_iterator(proc + "/fd", error)) {
    std::error_code link_error;
    const std::string target = fs::read_symlink(fd.path(), link_error);
    if (link_error) continue;
    if (target.rfind("socket:[", 0) == 0) {
      auto it = sockets.find(target.substr(8, target.size() - 9));
      if (it != sockets.end()) held.insert("socket " + it->second);
    } else if (target.rfind('/', 0) == 0 && target.rfind("/dev/", 0) != 0) {
      held.insert("file " + target);
    }
  }
  for (const std::string& arg : CommandLine(pid)) {
    std::istringstream options(arg);
    for (std::string option; std::getline(options, option, ',');) {
      for (const char* key : {"path=", "file=", "mem-path=", "ifname=", "file:"}) {
        if (option.rfind(key, 0) == 0) held.insert("argument " + option);
      }
    }
  }
  return held;
}

std::vector<pid_t> ProcessesMentioning(const std::string& text) {
  std::vector<pid_t> pids;
  std::error_code error;
  for (const fs::directory_entry& entry : fs::directory_iterator("/proc", error)) {
    const std::string name = entry.path().filename();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    const pid_t pid = static_cast<pid_t>(std::atoi(name.c_str()));
    if (pid == ::getpid()) continue;
    for (const std::string& arg : CommandLine(pid)) {
      if (arg.find(text) != std::string::npos) {
        pids.push_back(pid);
        break;
      }
    }
  }
  return pids;
}

}  // namespace fe::e2e
