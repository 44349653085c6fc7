// Undo in reverse: each step of a multi-step operation registers how to undo itself; if the
// operation does not reach Commit(), the undos run in reverse order when the Reverter is destroyed.
// A failing undo is logged (it returns a Status) and the remaining undos still run: the caller
// returns its original error, which is what the user needs to see.
//
// Not thread-safe: one Reverter belongs to one operation on one thread.
#pragma once

#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "base/log.h"
#include "base/status.h"

namespace fe {

class Reverter {
 public:
  Reverter() = default;
  // Moving hands the pending undos over (the moved-from reverter undoes nothing).
  Reverter(Reverter&& other) noexcept : undos_(std::exchange(other.undos_, {})) {}
  Reverter(const Reverter&) = delete;
  Reverter& operator=(const Reverter&) = delete;
  ~Reverter() { Revert(); }

  // `what` names the undo in the log when it fails ("remove volume i-…").
  void Add(std::string what, std::function<Status()> undo) { undos_.push_back({std::move(what), std::move(undo)}); }

  // The operation succeeded: nothing is undone.
  void Commit() { undos_.clear(); }

  // Runs the registered undos now, newest first, and forgets them.
  void Revert() {
    while (!undos_.empty()) {
      Undo undo = std::move(undos_.back());
      undos_.pop_back();
      Status status = undo.run();
      if (!status.ok()) LogError("rollback: " + undo.what + " failed: " + status.ToString());
    }
  }

 private:
  struct Undo {
    std::string what;
    std::function<Status()> run;
  };
  std::vector<Undo> undos_;
};

}  // namespace fe
