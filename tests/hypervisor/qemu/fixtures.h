// Fixtures of the qemu tests: a realistic stored config (fixtures/source_config.json) of a source
// instance in /data/vm-1, and the network identities of that source and of its fork.
#pragma once

#include <string>

#include <gtest/gtest.h>

#include "hypervisor/plugin.h"
#include "hypervisor/qemu/qemu_config.h"
#include "tests/hypervisor/plugin_fixtures.h"

namespace fe::hypervisor::qemu::test {

using hypervisor::test::kSourceDir;
using hypervisor::test::kTargetDir;
using hypervisor::test::SourceIdentity;

inline std::string FixturePath(const std::string& name) { return std::string(FE_QEMU_FIXTURES) + "/" + name; }
inline std::string FixtureText(const std::string& name) {
  return hypervisor::test::ReadFixtureText(FE_QEMU_FIXTURES, name);
}

inline Config SourceConfig() {
  Result<Config> config = ParseConfig(FixtureText("source_config.json"), "source_config.json");
  EXPECT_TRUE(config.ok()) << config.status().ToString();
  return config.ok() ? *config : Config();
}

inline NetworkIdentity TargetIdentity() {
  return NetworkIdentity{"fe-tap-2", "02:fe:00:00:00:02", "10.20.1.2", 24, "10.20.1.1", 7};
}

inline ForkSpec Spec(const std::string& source = kSourceDir, const std::string& target = kTargetDir) {
  ForkSpec spec;
  spec.source_dir = source;
  spec.target_dir = target;
  spec.source_identity = SourceIdentity();
  spec.target_identity = TargetIdentity();
  return spec;
}

}  // namespace fe::hypervisor::qemu::test
