// Fixtures of the cloud-hypervisor tests: real-format VmConfig files (fixtures/) written for a source
// instance in /data/vm-1, and the network identities of that source and of its fork.
#pragma once

#include <string>

#include <gtest/gtest.h>

#include "hypervisor/cloud_hypervisor/field_patterns.h"
#include "hypervisor/plugin.h"
#include "tests/hypervisor/plugin_fixtures.h"

namespace fe::hypervisor::cloud_hypervisor::test {

using hypervisor::test::kSourceDir;
using hypervisor::test::kTargetDir;
using hypervisor::test::SourceIdentity;

inline std::string FixturePath(const std::string& name) { return std::string(FE_CH_FIXTURES) + "/" + name; }
inline std::string FixtureText(const std::string& name) {
  return hypervisor::test::ReadFixtureText(FE_CH_FIXTURES, name);
}

inline Json Fixture(const std::string& name) { return Json::parse(FixtureText(name)); }

inline NetworkIdentity TargetIdentity() {
  return NetworkIdentity{"fe-tap-2", "02:fe:00:00:00:02", "10.20.1.2", 30, "10.20.1.1", 7};
}

}  // namespace fe::hypervisor::cloud_hypervisor::test
