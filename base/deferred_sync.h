// Durability in one step for a group of small writes that matter only together: a fork's intent,
// its cloned tree and its rewritten configs are worthless until its final metadata names them, so
// they need not each be synced (two fsyncs per file); one syncfs per filesystem before the final
// metadata makes them all durable, and a crash before that leaves an orphan recovery removes.
//
// While a DeferredSync lives on a thread, ReplaceFileAtomically (base/atomic_file.h) and the
// writers that ask Current() skip their fsyncs and Note() the directory instead; Sync() then runs
// syncfs once for each filesystem noted. Writes that must be durable on their own (state shared by
// every instance, like the network leases) use ReplaceFileDurably, which ignores the scope.
// Scopes nest: the inner one is current until it ends.
#pragma once

#include <sys/types.h>

#include <functional>
#include <map>
#include <string>

#include "base/status.h"
#include "base/unique_fd.h"

namespace fe {

class DeferredSync {
 public:
  // `syncfs` makes a filesystem durable (0, or -1 with errno set); empty: syncfs(2). Injected so tests
  // can fail it: a real syncfs failure (a write-back error) cannot be provoked on demand without
  // breaking the whole filesystem, and with it the rollback under test.
  using SyncfsFunction = std::function<int(int fd)>;
  explicit DeferredSync(SyncfsFunction syncfs = nullptr);
  ~DeferredSync();
  DeferredSync(const DeferredSync&) = delete;
  DeferredSync& operator=(const DeferredSync&) = delete;

  // The innermost scope on this thread, or nullptr.
  static DeferredSync* Current();

  // Remembers the filesystem `dir` is on, for Sync(). A failure is kept and returned by Sync().
  void Note(const std::string& dir);
  // The same for an open directory (its fd is duplicated when its filesystem is new to the scope).
  void Note(int dir_fd, const std::string& display);
  // syncfs for every filesystem noted; the first error (of Note or syncfs), naming the path.
  Status Sync();
  // Takes over what `other` noted (and its first error), so that one Sync covers the writes of scopes
  // that ran on other threads (a fan-out's workers). `other` is left with nothing noted.
  void Adopt(DeferredSync& other);

 private:
  const SyncfsFunction syncfs_;
  DeferredSync* previous_;
  std::map<dev_t, std::pair<std::string, UniqueFd>> filesystems_;  // by st_dev: a directory on it
  Status noted_;
};

}  // namespace fe
