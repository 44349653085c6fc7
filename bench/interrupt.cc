#include "bench/interrupt.h"

#include <signal.h>

#include <string>

namespace fe::bench {
namespace {

volatile sig_atomic_t g_signal = 0;

void OnSignal(int signal) { g_signal = signal; }

}  // namespace

void InstallInterruptHandlers() {
  struct sigaction action = {};
  action.sa_handler = OnSignal;
  action.sa_flags = SA_RESETHAND;  // no SA_RESTART: a blocking waitpid returns EINTR and we notice
  sigemptyset(&action.sa_mask);
  for (int signal : {SIGINT, SIGTERM, SIGHUP}) sigaction(signal, &action, nullptr);
}

bool Interrupted() { return g_signal != 0; }

Status CheckInterrupted() {
  if (!Interrupted()) return Status::Ok();
  return Status::Internal("interrupted by signal " + std::to_string(static_cast<int>(g_signal)));
}

}  // namespace fe::bench
