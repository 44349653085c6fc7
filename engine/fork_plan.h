// The fork as a pipeline: one plan value per fork and named steps, each registering its undo on the
// plan's reverter (engine/fork_steps.cc). Internal to the engine (fork.cc, live_fork.cc, create.cc).
//
//   admit (Fork: names reserved, the source's lock, target state, plugin capability)
//   -> WriteIntentAndClone  the intent metadata (state Creating) and the clone of the source's volume
//   -> LeaseAndRewrite      a network identity (one journal line) and the plugin's rewrite of the configs
//   -> StageFinalMetadata   the final metadata beside the intent, not yet named instance.json
//   -> CommitForks          for the whole group: one syncfs per filesystem, the renames, one more flush
//   -> BringUp              restore or start, for target Running
//   -> publish              (Fork) the forks become visible, their names stay taken
//
// The steps before CommitForks write without syncing (DeferredSync scopes, adopted by the group's);
// they run for every plan concurrently, on up to 8 threads, then the group commits at once, then the
// forks are brought up concurrently: a fan-out of 64 costs two flushes, not 64 x 5. The live path runs
// WriteIntentAndClone for every plan while the source is paused and the rest after it resumed. Until
// a plan is published its reverter undoes what its steps did, newest first.
#pragma once

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "base/reverter.h"
#include "engine/engine.h"

namespace fe::engine {

// Names taken for instances being made, reserved before any lock is waited for, so two requests can
// never both take one. Released when the reservation ends, unless Keep() (the instances were published).
class Engine::NameReservation {
 public:
  NameReservation(Engine& engine, std::vector<std::pair<std::string, std::string>> names_and_ids)
      : engine_(&engine), names_and_ids_(std::move(names_and_ids)) {}
  NameReservation(NameReservation&& other) noexcept
      : engine_(std::exchange(other.engine_, nullptr)), names_and_ids_(std::move(other.names_and_ids_)) {}
  NameReservation(const NameReservation&) = delete;
  NameReservation& operator=(const NameReservation&) = delete;
  NameReservation& operator=(NameReservation&&) = delete;
  ~NameReservation() {
    if (engine_ != nullptr) engine_->ReleaseNames(names_and_ids_);
  }

  // (name, its new instance id), in the order asked for.
  const std::vector<std::pair<std::string, std::string>>& names_and_ids() const { return names_and_ids_; }
  void Keep() { engine_ = nullptr; }

 private:
  Engine* engine_;
  std::vector<std::pair<std::string, std::string>> names_and_ids_;
};

struct Engine::ForkPlan {
  ForkPlan(const Instance& source, std::string name, std::string id, InstanceState target_state, std::string pool)
      : source(source), name(std::move(name)), id(std::move(id)), target_state(target_state), pool(std::move(pool)) {}

  const Instance& source;  // as it was under its lock (Standby while a Running source is snapshotted)
  const std::string name;
  const std::string id;
  const InstanceState target_state;
  const std::string pool;

  Instance fork;               // the intent, completed step by step
  bool from_snapshot = false;  // restored from its copy of the source's snapshot
  bool cloned = false;         // WriteIntentAndClone has run (the live path runs it early)
  std::optional<storage::CloneReport> clone_report;
  ForkOutcome outcome;
  std::shared_ptr<Entry> entry;  // once committed
  Reverter undo;

  // "fork '<name>' of '<source>': <step>: <status>".
  Status Failed(std::string_view step, const Status& status) const {
    return status.Annotate("fork '" + name + "' of '" + source.name + "': " + std::string(step));
  }
};

}  // namespace fe::engine
