#include "snapshot/path_rewrite.h"

#include <gtest/gtest.h>

#include "tests/support/scratch.h"

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

TEST(PathRewriterCheckTest, AcceptsPlainPathsInsideAndOutsideTheDirectories) {
  PathRewriter rewriter("/var/lib/fe/volumes/a", "/var/lib/fe/volumes/b", {"/var/lib/fe"});
  FE_EXPECT_OK(rewriter.Check("/var/lib/fe/volumes/a/disk.raw"));
  FE_EXPECT_OK(rewriter.Check("/var/lib/fe/volumes/b/disk.raw"));
  FE_EXPECT_OK(rewriter.Check("/boot/vmlinuz"));  // a shared, read-only file outside: the plugin decides
  FE_EXPECT_OK(rewriter.Check(""));
  FE_EXPECT_OK(rewriter.Check("api.sock"));
}

TEST(PathRewriterCheckTest, RefusesPathsWithDotDotOrEmptyComponents) {
  PathRewriter rewriter("/data/vm-1", "/data/vm-2");
  for (const char* path :
       {"/data/vm-1/../vm-3/disk.raw", "/data/vm-1/./disk", "/data/vm-1//disk", "/data/vm-1/", "../disk", "/.."}) {
    Status checked = rewriter.Check(path);
    EXPECT_EQ(checked.code(), ErrorCode::kInvalidContent) << path;
    EXPECT_NE(checked.message().find(std::string("'") + path + "'"), std::string::npos) << checked.message();
  }
}

TEST(PathRewriterCheckTest, RefusesPathsIntoAGuardedDirectoryOutsideTheOwnOnes) {
  PathRewriter rewriter("/var/lib/fe/volumes/a", "/var/lib/fe/volumes/b", {"/var/lib/fe/"});
  Status neighbour = rewriter.Check("/var/lib/fe/volumes/c/disk.raw");
  EXPECT_EQ(neighbour.code(), ErrorCode::kInvalidContent);
  EXPECT_NE(neighbour.message().find("points into /var/lib/fe"), std::string::npos) << neighbour.message();
  EXPECT_EQ(rewriter.Check("/var/lib/fe/network/network.json").code(), ErrorCode::kInvalidContent);
  EXPECT_EQ(rewriter.Check("/var/lib/fe").code(), ErrorCode::kInvalidContent);
  FE_EXPECT_OK(rewriter.Check("/var/lib/fe.bak/disk"));
}

TEST(PathRewriterCheckTest, NormalizedPathsAreThoseWithoutDotEmptyOrDotDotComponents) {
  EXPECT_TRUE(IsNormalizedPath("/"));
  EXPECT_TRUE(IsNormalizedPath("/a/b.c/..d"));
  EXPECT_TRUE(IsNormalizedPath("a/b"));
  EXPECT_FALSE(IsNormalizedPath(""));
  EXPECT_FALSE(IsNormalizedPath("/a/"));
  EXPECT_FALSE(IsNormalizedPath("/a/./b"));
  EXPECT_FALSE(IsNormalizedPath("a/../b"));
  EXPECT_FALSE(IsNormalizedPath("//a"));
}

}  // namespace
}  // namespace fe::snapshot
