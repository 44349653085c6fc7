// What the plugin tests share: fixture configs written for a source instance in /data/vm-1, read
// from each plugin's fixtures/ directory, and the source's network identity.
#pragma once

#include <string>

#include <gtest/gtest.h>

#include "hypervisor/plugin.h"
#include "tests/support/file_util.h"

namespace fe::hypervisor::test {

inline constexpr const char* kSourceDir = "/data/vm-1";
inline constexpr const char* kTargetDir = "/data/vm-2";

// The content of `fixtures_dir`/`name`; a test failure (and "") when it cannot be read.
inline std::string ReadFixtureText(const std::string& fixtures_dir, const std::string& name) {
  Result<std::string> text = fe::test::ReadFile(fixtures_dir + "/" + name);
  EXPECT_TRUE(text.ok()) << text.status().ToString();
  return text.ok() ? *text : std::string();
}

inline NetworkIdentity SourceIdentity() {
  return NetworkIdentity{"fe-tap-1", "02:fe:00:00:00:01", "10.20.0.2", 24, "10.20.0.1", 3};
}

}  // namespace fe::hypervisor::test
