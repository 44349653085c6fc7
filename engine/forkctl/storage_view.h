// Renderings of storage replies: `GET /v1/storage` and the measured clone costs it and
// `forkctl storage probe` carry.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

namespace fe::engine::forkctl {

// GET /v1/storage as "key  value" lines; the thin pool and the measured costs when the reply has them.
std::string StorageDetails(const nlohmann::json& storage);

// A `measured_costs` object as one line per clone ("measured    copy  69 entries  812 us") and the
// fitted btrfs crossover, if any; "" for null.
std::string MeasuredCostsLines(const nlohmann::json& costs);

}  // namespace fe::engine::forkctl
