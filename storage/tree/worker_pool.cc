#include "storage/tree/worker_pool.h"

namespace fe::storage::tree {

WorkerPool& WorkerPool::Shared() {
  static WorkerPool pool([] {
    unsigned cores = std::thread::hardware_concurrency();
    return cores > 1 ? cores - 1 : 1;
  }());
  return pool;
}

WorkerPool::WorkerPool(unsigned workers) {
  threads_.reserve(workers);
  for (unsigned i = 0; i < workers; ++i) threads_.emplace_back([this] { WorkerLoop(); });
}

WorkerPool::~WorkerPool() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  changed_.notify_all();
  for (std::thread& thread : threads_) thread.join();
}

void WorkerPool::Submit(TaskGroup& group, std::function<void()> task) {
  group.pending_.fetch_add(1, std::memory_order_relaxed);
  {
    std::lock_guard lock(mutex_);
    queue_.push_back(Task{&group, std::move(task)});
  }
  changed_.notify_all();
}

void WorkerPool::Run(Task& task) {
  task.run();
  if (task.group->pending_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
    // Taking the mutex orders this notification after a waiter's check of Done().
    std::lock_guard lock(mutex_);
    changed_.notify_all();
  }
}

void WorkerPool::WorkerLoop() {
  std::unique_lock lock(mutex_);
  while (true) {
    changed_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
    if (queue_.empty()) return;  // stopping and drained
    Task task = std::move(queue_.front());
    queue_.pop_front();
    lock.unlock();
    Run(task);
    lock.lock();
  }
}

void WorkerPool::Wait(TaskGroup& group) {
  std::unique_lock lock(mutex_);
  while (!group.Done()) {
    if (!queue_.empty()) {
      Task task = std::move(queue_.front());
      queue_.pop_front();
      lock.unlock();
      Run(task);
      lock.lock();
      continue;
    }
    changed_.wait(lock, [&] { return group.Done() || !queue_.empty(); });
  }
}

}  // namespace fe::storage::tree
