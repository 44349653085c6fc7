// A test double of Firecracker's API server on a Unix socket (tests/support/fake_api_server.h) that
// answers GET /version with `version` and GET /vm/config with `vm_config`.
#pragma once

#include <string>

#include "hypervisor/firecracker/json_util.h"
#include "tests/support/fake_api_server.h"

namespace fe::hypervisor::firecracker::test {

using Request = fe::test::RecordedRequest;

class FakeFirecracker : public fe::test::FakeApiServer {
 public:
  explicit FakeFirecracker(std::string socket)
      : FakeApiServer(std::move(socket), [this](const httplib::Request& request, httplib::Response& response) {
          if (request.method == "GET" && request.path == "/version") {
            response.set_content(Json{{"firecracker_version", version}}.dump(), "application/json");
            return true;
          }
          if (request.method == "GET" && request.path == "/vm/config") {
            response.set_content(vm_config.dump(), "application/json");
            return true;
          }
          return false;
        }) {}

  std::string version = "1.16.0";
  Json vm_config = Json::object();
};

}  // namespace fe::hypervisor::firecracker::test
