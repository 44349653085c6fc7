// Loopback TCP ports for tests that start servers which need a fixed port (etcd, Prometheus).
#pragma once

namespace fe::test {

// A TCP port free a moment ago on every address, or -1. It is chosen at random below the kernel's
// ephemeral range, so no outgoing connection can take it before the server binds it, and never twice
// in one process.
int FreeTcpPort();

}  // namespace fe::test
