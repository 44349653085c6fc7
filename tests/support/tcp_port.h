// Loopback TCP ports for tests that start servers which need a fixed port (etcd, Prometheus).
#pragma once

namespace fe::test {

// A loopback TCP port free a moment ago (bound to port 0 and closed), or -1.
int FreeTcpPort();

}  // namespace fe::test
