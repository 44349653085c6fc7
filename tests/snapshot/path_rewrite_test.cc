#include "snapshot/path_rewrite.h"

#include <gtest/gtest.h>

namespace fe::snapshot {
namespace {

TEST(PathRewriterTest, RewritesTheSourceDirectoryItself) {
  PathRewriter rewriter("/data/vm-1", "/data/vm-2");
  EXPECT_EQ(rewriter.Rewrite("/data/vm-1"), "/data/vm-2");
}

TEST(PathRewriterTest, RewritesPathsBeneathTheSourceDirectory) {
  PathRewriter rewriter("/data/vm-1", "/data/vm-2");
  EXPECT_EQ(rewriter.Rewrite("/data/vm-1/disk.raw"), "/data/vm-2/disk.raw");
  EXPECT_EQ(rewriter.Rewrite("/data/vm-1/snapshot/config.json"), "/data/vm-2/snapshot/config.json");
}

TEST(PathRewriterTest, LeavesSiblingsWithTheSourceAsPrefixAlone) {
  PathRewriter rewriter("/data/vm-1", "/data/vm-2");
  EXPECT_EQ(rewriter.Rewrite("/data/vm-10/disk"), std::nullopt);
  EXPECT_EQ(rewriter.Rewrite("/data/vm-1.bak/disk"), std::nullopt);
  EXPECT_EQ(rewriter.RewriteOrKeep("/data/vm-10/disk"), "/data/vm-10/disk");
}

TEST(PathRewriterTest, LeavesValuesThatOnlyContainTheSourcePathAlone) {
  PathRewriter rewriter("/data/vm-1", "/data/vm-2");
  EXPECT_EQ(rewriter.Rewrite("root=/dev/vda init=/data/vm-1/init"), std::nullopt);
  EXPECT_EQ(rewriter.Rewrite("/srv/data/vm-1/disk"), std::nullopt);
  EXPECT_EQ(rewriter.Rewrite("data/vm-1/disk"), std::nullopt);
  EXPECT_EQ(rewriter.Rewrite(""), std::nullopt);
}

TEST(PathRewriterTest, IgnoresTrailingSlashesOfTheDirectories) {
  PathRewriter rewriter("/data/vm-1/", "/data/vm-2//");
  EXPECT_EQ(rewriter.source_dir(), "/data/vm-1");
  EXPECT_EQ(rewriter.Rewrite("/data/vm-1/disk"), "/data/vm-2/disk");
}

TEST(PathRewriterTest, RefusesRelativeDirectories) {
  EXPECT_THROW(PathRewriter("data/vm-1", "/data/vm-2"), std::invalid_argument);
  EXPECT_THROW(PathRewriter("/data/vm-1", ""), std::invalid_argument);
}

}  // namespace
}  // namespace fe::snapshot
