// Fixtures of the cloud-hypervisor tests: real-format VmConfig files (fixtures/) written for a source
// instance in /data/vm-1, and the network identities of that source and of its fork.
#pragma once

#include <string>

#include <gtest/gtest.h>

#include "hypervisor/cloud_hypervisor/json_fields.h"
#include "hypervisor/plugin.h"
#include "tests/support/file_util.h"

namespace fe::hypervisor::cloud_hypervisor::test {

inline constexpr const char* kSourceDir = "/data/vm-1";
inline constexpr const char* kTargetDir = "/data/vm-2";

inline std::string FixturePath(const std::string& name) { return std::string(FE_CH_FIXTURES) + "/" + name; }

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
  return NetworkIdentity{"fe-tap-2", "02:fe:00:00:00:02", "10.20.1.2", 30, "10.20.1.1", 7};
}

}  // namespace fe::hypervisor::cloud_hypervisor::test
