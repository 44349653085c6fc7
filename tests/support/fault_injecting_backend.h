// A storage Backend that forwards to a real one and fails chosen calls: the N-th Create, Clone, Import
// or Remove returns a given error without reaching the real backend. Tests pass it to the engine
// (EngineDependencies) to drive rollbacks through real storage, with no hook in production code.
// The faults are shared (Faults), so a test still steers them after the engine took the backend.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "storage/backend.h"

namespace fe::test {

enum class BackendCall { kCreate, kClone, kImport, kRemove };

class BackendFaults {
 public:
  // The `nth` call (1-based, counted from now) of `call` fails with `status`.
  void FailNth(BackendCall call, int nth, Status status) {
    std::lock_guard lock(mutex_);
    faults_[call].emplace_back(calls_[call] + nth, std::move(status));
  }
  // Counts a call; the error to return instead of making it, if one is planned.
  Status Next(BackendCall call) {
    std::lock_guard lock(mutex_);
    int count = ++calls_[call];
    for (auto& [nth, status] : faults_[call]) {
      if (nth == count) return status;
    }
    return Status::Ok();
  }
  int calls(BackendCall call) {
    std::lock_guard lock(mutex_);
    return calls_[call];
  }

 private:
  std::mutex mutex_;
  std::map<BackendCall, int> calls_;
  std::map<BackendCall, std::vector<std::pair<int, Status>>> faults_;
};

class FaultInjectingBackend : public storage::Backend {
 public:
  FaultInjectingBackend(std::unique_ptr<storage::Backend> inner, std::shared_ptr<BackendFaults> faults)
      : inner_(std::move(inner)), faults_(std::move(faults)) {}

  std::string_view Name() const override { return inner_->Name(); }
  storage::BackendCapabilities Capabilities() const override { return inner_->Capabilities(); }
  const std::string& Root() const override { return inner_->Root(); }
  const std::string& SelectionReason() const override { return inner_->SelectionReason(); }
  Status Create(const std::string& volume) override {
    FE_RETURN_IF_ERROR(faults_->Next(BackendCall::kCreate));
    return inner_->Create(volume);
  }
  Result<storage::CloneReport> Clone(const std::string& parent, const std::string& volume) override {
    FE_RETURN_IF_ERROR(faults_->Next(BackendCall::kClone));
    return inner_->Clone(parent, volume);
  }
  Result<storage::CloneReport> Import(const std::string& source_dir, const std::string& volume) override {
    FE_RETURN_IF_ERROR(faults_->Next(BackendCall::kImport));
    return inner_->Import(source_dir, volume);
  }
  Status Remove(const std::string& volume) override {
    FE_RETURN_IF_ERROR(faults_->Next(BackendCall::kRemove));
    return inner_->Remove(volume);
  }
  Result<storage::VolumeUsage> Usage(const std::string& volume) override { return inner_->Usage(volume); }
  Result<std::vector<std::string>> List() override { return inner_->List(); }
  std::string Path(const std::string& volume) const override { return inner_->Path(volume); }
  Result<std::vector<std::string>> RemoveLeftovers() override { return inner_->RemoveLeftovers(); }

 private:
  std::unique_ptr<storage::Backend> inner_;
  std::shared_ptr<BackendFaults> faults_;
};

}  // namespace fe::test
