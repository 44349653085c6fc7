#include "engine/forkd/request_log.h"

#include <fmt/format.h>

namespace fe::engine::forkd {

std::string LogValue(std::string_view value) {
  bool plain = !value.empty() && value.find_first_of(" \t\r\n\"=\\") == std::string_view::npos;
  if (plain) return std::string(value);
  std::string quoted = "\"";
  for (char c : value) {
    if (c == '"' || c == '\\') quoted += '\\';
    if (c == '\n') {
      quoted += "\\n";
      continue;
    }
    quoted += c;
  }
  return quoted + "\"";
}

std::string RequestLogLine(const RequestRecord& record) {
  std::string line = fmt::format("request method={} path={} status={} duration_ms={:.3f}", LogValue(record.method),
                                 LogValue(record.path), record.status, record.duration_ms);
  if (!record.instance.empty()) line += " instance=" + LogValue(record.instance);
  if (!record.forks.empty()) line += " forks=" + LogValue(fmt::format("{}", fmt::join(record.forks, ",")));
  if (!record.error.empty()) line += " error=" + LogValue(record.error);
  return line;
}

std::string ForkLogLine(std::string_view source_id, const engine::ForkOutcome& outcome) {
  const engine::ForkPhases& p = outcome.phases;
  return fmt::format(
      "fork source={} fork={} name={} state={} mechanism={} files={} logical_bytes={} shared_bytes={} copied_bytes={} "
      "total_us={} "
      "lock_wait_us={} source_standby_us={} source_pause_us={} preflush_us={} preflush_rounds={} throttle_us={} "
      "dirty_bytes_at_pause={} huge_page_collapse_us={} filesystems_frozen_us={} background_snapshot_us={} clone_us={} "
      "rewrite_us={} "
      "metadata_us={} restore_us={} "
      "identity_us={} live={}",
      LogValue(source_id), LogValue(outcome.instance.id), LogValue(outcome.instance.name),
      engine::InstanceStateName(outcome.instance.state), LogValue(outcome.mechanism), outcome.files,
      outcome.logical_bytes, outcome.shared_bytes, outcome.copied_bytes, p.total_us, p.lock_wait_us,
      p.source_standby_us, p.source_pause_us, p.preflush_us, p.preflush_rounds, p.throttle_us,
      p.dirty_bytes_at_pause ? std::to_string(*p.dirty_bytes_at_pause) : std::string("unknown"),
      p.huge_page_collapse_us, p.filesystems_frozen_us, p.background_snapshot_us, p.clone_us, p.rewrite_us,
      p.metadata_us, p.restore_us, p.identity_us, outcome.live);
}

}  // namespace fe::engine::forkd
