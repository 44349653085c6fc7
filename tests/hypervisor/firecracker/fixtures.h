// Fixtures of the firecracker tests: a real-format Firecracker config (fixtures/config.json) written
// for a source instance in /data/vm-1, and the network identities of that source and of its fork.
#pragma once

#include <gtest/gtest.h>

#include <string>

#include "hypervisor/firecracker/json_util.h"
#include "hypervisor/plugin.h"
#include "tests/hypervisor/plugin_fixtures.h"

namespace fe::hypervisor::firecracker::test {

using hypervisor::test::kSourceDir;
using hypervisor::test::kTargetDir;
using hypervisor::test::SourceIdentity;

inline std::string FixturePath(const std::string& name) { return std::string(FE_FC_FIXTURES) + "/" + name; }
inline std::string FixtureText(const std::string& name) {
  return hypervisor::test::ReadFixtureText(FE_FC_FIXTURES, name);
}

inline Json Fixture(const std::string& name) { return Json::parse(FixtureText(name)); }

inline NetworkIdentity TargetIdentity() {
  return NetworkIdentity{"fe-tap-2", "02:fe:00:00:00:02", "10.20.0.3", 24, "10.20.0.1", 7};
}

}  // namespace fe::hypervisor::firecracker::test
