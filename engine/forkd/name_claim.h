// The cluster-wide claim of the names a request is about to give instances (create, fork, a renaming
// acquire), held for the length of the request (engine/cluster/name_reservations.h). Without a
// cluster (null reservations) it claims nothing and always succeeds.
#pragma once

#include <string>
#include <vector>

#include "base/status.h"
#include "engine/cluster/name_reservations.h"

namespace fe::engine::forkd {

class NameClaim {
 public:
  NameClaim(cluster::NameReservations* reservations, std::vector<std::string> names);
  ~NameClaim();  // Settle(false) when the request did not
  NameClaim(const NameClaim&) = delete;
  NameClaim& operator=(const NameClaim&) = delete;

  // Ok, or AlreadyExists naming the name and the node that holds it.
  const Status& status() const { return status_; }
  // The request is done; `made`: its instances exist (the claims stay).
  void Settle(bool made);

 private:
  cluster::NameReservations* reservations_;
  std::vector<std::string> names_;
  Status status_;
  bool settled_ = false;
};

}  // namespace fe::engine::forkd
