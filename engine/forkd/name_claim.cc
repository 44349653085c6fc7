#include "engine/forkd/name_claim.h"

#include <utility>

namespace fe::engine::forkd {

NameClaim::NameClaim(cluster::NameReservations* reservations, std::vector<std::string> names)
    : reservations_(reservations), names_(std::move(names)) {
  if (reservations_ == nullptr || names_.empty()) {
    settled_ = true;
    return;
  }
  status_ = reservations_->Reserve(names_);
  settled_ = !status_.ok();  // a refused Reserve has settled itself
}

NameClaim::~NameClaim() { Settle(false); }

void NameClaim::Settle(bool made) {
  if (settled_) return;
  settled_ = true;
  reservations_->Settle(names_, made);
}


}  // namespace fe::engine::forkd
