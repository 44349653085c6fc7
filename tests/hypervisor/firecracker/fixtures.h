// Fixtures of the firecracker tests: a real-format Firecracker config (fixtures/config.json) written
// for a source instance in /data/vm-1, and the network identities of that source and of its fork.
#pragma once

#include <gtest/gtest.h>

#include <string>

#include "hypervisor/firecracker/json_util.h"
#include "hypervisor/plugin.h"
#include "tests/support/file_util.h"

namespace fe::hypervisor::firecracker::test {

inline constexpr const char* kSourceDir = "/data/vm-1";
inline constexpr const char* kTargetDir = "/data/vm-2";

inline std::string FixturePath(const std::string& name) { return std::string(FE_FC_FIXTURES) + "/" + name; }

inline std::string FixtureText(const std::string& name) {
  Result<std::string> text = fe::test::ReadFile(FixturePath(name));
  EXPECT_TRUE(text.ok()) << text.status().ToString();
  return text.ok() ? *text : std::string();
}

inline Json Fixture(const std::string& name) { return Json::parse(FixtureText(name)); }

inline NetworkIdentity SourceIdentity() {
  return NetworkIdentity{"fe-tap-1", "02:fe:00:00:00:01", "10.20.0.2", 24, "10.20.0.1", 3};
}

inline NetworkIdentity TargetIdentity() {
  return NetworkIdentity{"fe-tap-2", "02:fe:00:00:00:02", "10.20.0.3", 24, "10.20.0.1", 7};
}

}  // namespace fe::hypervisor::firecracker::test
