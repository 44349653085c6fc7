// The registry: every supported kind finds its plugin; anything else is refused with a clear error.
#include "hypervisor/registry/registry.h"

#include <gtest/gtest.h>

namespace fe::hypervisor::registry {
namespace {

TEST(RegistryTest, EverySupportedKindFindsAPluginOfThatKind) {
  std::vector<std::string> kinds = SupportedKinds();
  EXPECT_EQ(kinds, (std::vector<std::string>{"cloud-hypervisor", "qemu", "firecracker"}));
  for (const std::string& kind : kinds) {
    Result<const Plugin*> plugin = FindPlugin(kind);
    ASSERT_TRUE(plugin.ok()) << plugin.status().ToString();
    EXPECT_EQ((*plugin)->Kind(), kind);
  }
}

TEST(RegistryTest, UnknownHypervisorIsUnsupportedAndTheErrorListsWhatIs) {
  for (std::string_view kind : {"vz", "", "QEMU", "cloud_hypervisor"}) {
    Result<const Plugin*> plugin = FindPlugin(kind);
    ASSERT_FALSE(plugin.ok()) << kind;
    EXPECT_EQ(plugin.status().code(), ErrorCode::kUnsupported);
    std::string quoted = "'";  // appended: GCC 12 -O3 warns falsely (-Wrestrict) on "'" + std::string(kind)
    quoted.append(kind).append("'");
    EXPECT_NE(plugin.status().message().find(quoted), std::string::npos);
    EXPECT_NE(plugin.status().message().find("cloud-hypervisor, qemu, firecracker"), std::string::npos);
  }
}

}  // namespace
}  // namespace fe::hypervisor::registry
