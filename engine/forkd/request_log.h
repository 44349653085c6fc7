// The daemon's structured log lines, key=value, one per request and one per fork, so a line can be
// grepped and parsed without a JSON reader:
//   request method=POST path=/v1/instances/web/fork status=201 duration_ms=3.2 instance=web forks=i-1,i-2
//   fork source=i-... fork=i-... name=web-1 mechanism=reflink total_us=812 lock_wait_us=3 clone_us=640 ...
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "engine/engine.h"

namespace fe::engine::forkd {

struct RequestRecord {
  std::string_view method;
  std::string_view path;
  int status = 0;
  double duration_ms = 0;
  std::string_view instance;       // the instance the request named, if any
  std::vector<std::string> forks;  // ids of the forks it made
  std::string_view error;          // the error message of a failed request
};

std::string RequestLogLine(const RequestRecord& record);
std::string ForkLogLine(std::string_view source_id, const engine::ForkOutcome& outcome);

// `value` as a log value: bare when it has no space, quote or '=', else double-quoted and escaped.
std::string LogValue(std::string_view value);

}  // namespace fe::engine::forkd
