// Runs test code in a network namespace of its own, so TAPs, bridges and veths it makes touch nothing
// of the host's network: `body` runs on a new thread after unshare(CLONE_NEWNET) (a namespace is per
// thread; processes the body starts inherit it), and the namespace goes when the thread ends.
#pragma once

#include <functional>
#include <string>

namespace fe::test {

// Empty when `body` ran; otherwise why the namespace could not be made (errno's text).
std::string RunInNewNetworkNamespace(const std::function<void()>& body);

}  // namespace fe::test
