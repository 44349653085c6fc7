#include "base/log.h"

#include <atomic>
#include <cstdio>
#include <string>

namespace fe {
namespace {

std::string_view LevelName(LogLevel level) {
  switch (level) {
    case LogLevel::kDebug: return "debug";
    case LogLevel::kInfo: return "info";
    case LogLevel::kWarning: return "warning";
    case LogLevel::kError: return "error";
  }
  return "?";
}

void StderrSink(LogLevel level, std::string_view message) {
  // One fprintf per line, so concurrent lines do not interleave.
  std::string line = "forkengine: " + std::string(LevelName(level)) + ": " + std::string(message) + "\n";
  std::fputs(line.c_str(), stderr);
}

std::atomic<LogSink> current_sink{&StderrSink};

}  // namespace

void SetLogSink(LogSink sink) { current_sink.store(sink != nullptr ? sink : &StderrSink); }

void Log(LogLevel level, std::string_view message) { current_sink.load()(level, message); }

}  // namespace fe
