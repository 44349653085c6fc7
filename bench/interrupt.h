// Ctrl-C and SIGTERM during a benchmark must still unmount the scratch filesystems: the handler
// only sets a flag, the long loops poll it and return an error, and unwinding runs the destructors.
#pragma once

#include "base/status.h"

namespace fe::bench {

// Installs SIGINT/SIGTERM/SIGHUP handlers. The first signal requests a stop; a second one, if the
// stop takes too long, terminates the process the default way (SA_RESETHAND).
void InstallInterruptHandlers();

bool Interrupted();

// An error once a signal arrived, so loops can FE_RETURN_IF_ERROR(CheckInterrupted()).
Status CheckInterrupted();

}  // namespace fe::bench
