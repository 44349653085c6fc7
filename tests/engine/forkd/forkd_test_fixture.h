// The fixture of forkd's API tests: a data root on a loop-mounted XFS scratch (so imports and forks
// reflink), a socket in a private temp directory, a guest directory to import, and helpers that make
// requests and check their answers.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "tests/engine/forkd/forkd_harness.h"
#include "tests/support/scratch.h"
#include "tests/support/temp_dir.h"

namespace fe::engine::forkd::test {

class ForkdTest : public fe::test::ScratchTest {
 protected:
  void SetUp() override {
    FE_REQUIRE_LOOP();
    FE_SCRATCH_DIR(dir, fe::test::ScratchFs::kXfs);
    scratch_ = dir;
    Result<fe::test::TempDir> temp = fe::test::TempDir::Create();
    ASSERT_TRUE(temp.ok()) << temp.status().ToString();
    temp_.emplace(std::move(*temp));
    data_root_ = scratch_ + "/data";
    socket_ = temp_->Sub("run/forkd.sock");
    guest_ = scratch_ + "/guest";
    FE_ASSERT_OK(MakeGuestDir(guest_));
  }

  void TearDown() override { forkd_.reset(); }

  // Starts forkd on data_root_ and socket_ and waits until it answers.
  void StartForkd(std::vector<std::string> extra = {}) {
    forkd_ = std::make_unique<ForkdProcess>(data_root_, socket_, temp_->Sub("forkd.log"), std::move(extra));
    FE_ASSERT_OK(forkd_->Start());
    FE_ASSERT_OK(forkd_->WaitReady());
  }

  ApiClient api() const { return ApiClient(socket_); }

  // Imports guest_ as `name`; returns the instance JSON (null on failure, with a test failure).
  Json Import(const std::string& name) {
    ApiResponse response =
        api().Post("/v1/instances", Json{{"name", name}, {"hypervisor", "cloud-hypervisor"}, {"import_dir", guest_}});
    EXPECT_EQ(response.status, 201) << response.body << response.error;
    return response.status == 201 ? response.json : Json();
  }

  std::string log() const { return forkd_ ? forkd_->Log() : std::string(); }

  // Whether forkd's log comes to contain `text`. A request's log line is written after its response
  // (httplib's logger runs once the response is out), so a client may read the log before it lands.
  bool LogEventuallyContains(const std::string& text) const {
    for (int attempt = 0; attempt < 500; ++attempt) {
      if (log().find(text) != std::string::npos) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return false;
  }

  std::string scratch_, data_root_, socket_, guest_;
  std::optional<fe::test::TempDir> temp_;
  std::unique_ptr<ForkdProcess> forkd_;
};

// "<status> <code>" of an error response, e.g. "404 not_found", for one-line expectations.
inline std::string StatusAndCode(const ApiResponse& response) {
  std::string code = response.json.is_object() && response.json.contains("code") && response.json["code"].is_string()
                         ? response.json["code"].get<std::string>()
                         : "(no code: " + response.body + response.error + ")";
  return std::to_string(response.status) + " " + code;
}

}  // namespace fe::engine::forkd::test
