// forkd under systemd (packaging/systemd/): the listening socket systemd passes (forkd.socket), the
// readiness and stop notifications of Type=notify, and journald's priority prefixes on log lines.
// Each is a no-op where systemd is absent, so forkd runs the same from a shell or a test.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "base/status.h"

namespace fe::engine::forkd {

struct ActivatedSocket {
  int fd = -1;
  std::string path;  // where systemd bound it (forkd.socket's ListenStream)
};

// The Unix stream socket systemd passed (LISTEN_FDS, for this process), listening; nullopt when
// forkd was not socket-activated. More than one socket, or one that is not a listening Unix stream
// socket with a path, is an error naming what was passed. The LISTEN_* variables are cleared, so the
// VMs forkd starts do not think they were activated too.
Result<std::optional<ActivatedSocket>> TakeActivatedSocket();

// Sends `state` ("READY=1", "STOPPING=1", "STATUS=…", lines joined by '\n') to systemd when
// NOTIFY_SOCKET is set (Type=notify); does nothing otherwise. A failure to send is returned, for the
// log: the service still runs (systemd times out its start if readiness never arrives).
Status NotifyServiceManager(std::string_view state);

// spdlog's line format: journald's when forkd's stderr is journald's stream (JOURNAL_STREAM names its
// device and inode): "<N>" priority prefixes (sd-daemon's levels) and no timestamp of its own, since
// journald stamps the lines; else the plain timestamped format.
void ConfigureLogFormat();

// The first thing a daemon's main does (forkd, forkrouter), before any thread exists: the
// libraries' log lines (base/log.h) go to spdlog, SIGPIPE is ignored, and SIGTERM and SIGINT are
// blocked in every thread to come, so only WaitForStopSignal takes them (no work in a signal handler).
void PrepareDaemonProcess();
// Waits until SIGTERM or SIGINT arrives; its description ("Terminated").
std::string WaitForStopSignal();

}  // namespace fe::engine::forkd
