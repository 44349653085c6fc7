// The log facade below the daemon: base/, storage/ and the other libraries log through it, and the
// program decides where lines go (forkd routes them to spdlog; the default is one line on stderr).
// Libraries never pick a logging framework of their own.
#pragma once

#include <string_view>

namespace fe {

enum class LogLevel { kDebug, kInfo, kWarning, kError };

// Receives every line; must be thread-safe. nullptr restores the default (stderr).
using LogSink = void (*)(LogLevel level, std::string_view message);

// Process-wide; set it once at start-up, before threads log.
void SetLogSink(LogSink sink);

void Log(LogLevel level, std::string_view message);
inline void LogInfo(std::string_view message) { Log(LogLevel::kInfo, message); }
inline void LogWarning(std::string_view message) { Log(LogLevel::kWarning, message); }
inline void LogError(std::string_view message) { Log(LogLevel::kError, message); }

}  // namespace fe
