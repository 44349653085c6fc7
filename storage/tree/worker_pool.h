// A small process-wide pool of threads for the blocking work io_uring cannot issue (FICLONE,
// fchown/fchmod/futimens, copies). The thread that waits on a group runs queued tasks itself, so a
// two-core machine uses both cores with one worker and nested submissions never deadlock.
#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace fe::storage::tree {

// Counts the outstanding tasks of one operation (one clone).
class TaskGroup {
 public:
  bool Done() const { return pending_.load(std::memory_order_acquire) == 0; }

 private:
  friend class WorkerPool;
  std::atomic<int> pending_{0};
};

class WorkerPool {
 public:
  // One worker per core beyond the first: the waiting caller is the other.
  static WorkerPool& Shared();

  explicit WorkerPool(unsigned workers);
  ~WorkerPool();
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  // Queues `task` as part of `group`. Tasks must not throw.
  void Submit(TaskGroup& group, std::function<void()> task);
  // Runs queued tasks (of any group) on the calling thread until every task of `group` is done.
  void Wait(TaskGroup& group);

 private:
  struct Task {
    TaskGroup* group;
    std::function<void()> run;
  };
  void WorkerLoop();
  void Run(Task& task);

  std::mutex mutex_;
  // Signalled when a task is queued, a group finishes, or the pool stops; workers and waiters
  // re-check their condition under mutex_.
  std::condition_variable changed_;
  std::deque<Task> queue_;  // guarded by mutex_
  bool stopping_ = false;   // guarded by mutex_
  std::vector<std::thread> threads_;
};

}  // namespace fe::storage::tree
