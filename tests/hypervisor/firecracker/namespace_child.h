// A stand-in for a firecracker process started with LaunchMode::kRestore: a forked child in a mount
// namespace of its own (slave propagation, like `unshare --propagation slave`) that, asked for a path over a socket,
// answers what that path holds in its namespace. Tests use it to see the source-path alias the way firecracker would.
#pragma once

#include <sys/types.h>

#include <functional>
#include <string>

#include "base/status.h"
#include "base/unique_fd.h"

namespace fe::hypervisor::firecracker::test {

class NamespaceChild {
 public:
  // Forks the child; `serve` (optional) runs in it after it entered its namespace, instead of the
  // path-reading loop (for a test-double firecracker API server). Without `new_namespace` the child
  // stays in the test's namespace (a plain child process). When the child cannot make a mount
  // namespace, Unsupported.
  static Result<NamespaceChild> Start(std::function<void()> serve = nullptr, bool new_namespace = true);

  NamespaceChild(NamespaceChild&& other) noexcept;
  NamespaceChild& operator=(NamespaceChild&&) = delete;
  ~NamespaceChild();  // kills and reaps the child

  pid_t pid() const { return pid_; }
  int pidfd() const { return pidfd_.get(); }
  // The content of the regular file `path` as the child sees it, or "<errno text>".
  std::string Read(const std::string& path);
  // Kills the child and waits for it.
  void Kill();

 private:
  NamespaceChild() = default;
  pid_t pid_ = -1;
  UniqueFd pidfd_;
  UniqueFd channel_;
};

// Whether this process may make mount namespaces (root with CAP_SYS_ADMIN, unshare allowed).
bool CanMakeMountNamespaces(std::string* why);

}  // namespace fe::hypervisor::firecracker::test
