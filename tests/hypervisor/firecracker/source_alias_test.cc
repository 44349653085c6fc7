// The source-path alias: its protocol with a recording fake of the namespace mounts (set-up and
// tear-down on every path, the per-source lock, placeholders and their crash recovery), and the real
// thing in a child's mount namespace of its own, where the host never sees the alias.
#include "hypervisor/firecracker/source_alias.h"

#include <gtest/gtest.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "tests/hypervisor/firecracker/namespace_child.h"
#include "tests/support/file_util.h"
#include "tests/support/temp_dir.h"

namespace fe::hypervisor::firecracker {
namespace {

using namespace std::chrono_literals;
using fe::test::ReadFile;
using fe::test::TempDir;
using fe::test::WriteFile;

bool Exists(const std::string& path) {
  struct stat st {};
  return ::lstat(path.c_str(), &st) == 0;
}

// Records every call; fails Bind or Unmount on demand; checks the mount point exists at Bind.
class FakeMounts : public NamespaceMounts {
 public:
  Status Bind(pid_t, int, const std::string& from, const std::string& onto) override {
    std::lock_guard lock(mutex_);
    calls.push_back("bind " + from + " -> " + onto);
    mount_point_existed = Exists(onto);
    if (!bind_status.ok()) return bind_status;
    int now = ++active;
    max_active = std::max(max_active.load(), now);
    return Status::Ok();
  }
  Status Unmount(pid_t, int, const std::string& path) override {
    std::lock_guard lock(mutex_);
    calls.push_back("unmount " + path);
    --active;
    return unmount_status;
  }

  std::mutex mutex_;
  std::vector<std::string> calls;
  Status bind_status;
  Status unmount_status;
  bool mount_point_existed = false;
  std::atomic<int> active{0};
  std::atomic<int> max_active{0};
};

class SourceAliasTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Result<TempDir> dir = TempDir::Create();
    ASSERT_TRUE(dir.ok()) << dir.status().ToString();
    dir_.emplace(std::move(*dir));
    source_ = dir_->Sub("vm-1");
    target_ = dir_->Sub("vm-2");
    ASSERT_EQ(::mkdir(source_.c_str(), 0755), 0);
    ASSERT_EQ(::mkdir(target_.c_str(), 0755), 0);
    ASSERT_TRUE(WriteFile(source_ + "/marker", "source").ok());
    ASSERT_TRUE(WriteFile(target_ + "/marker", "fork").ok());
    options_.lock_dir = dir_->Sub("locks");
    options_.lock_timeout = 2s;
    options_.mounts = &mounts_;
  }

  Result<std::unique_ptr<SourceAlias>> Alias(const std::string& from, const std::string& to) {
    return SourceAlias::Create(4242, -1, PathAlias{from, to}, options_);
  }

  std::optional<TempDir> dir_;
  std::string source_, target_;
  FakeMounts mounts_;
  AliasOptions options_;
};

TEST_F(SourceAliasTest, BindsForkOverSourceAndRemovesItOnce) {
  Result<std::unique_ptr<SourceAlias>> alias = Alias(source_, target_);
  ASSERT_TRUE(alias.ok()) << alias.status().ToString();
  EXPECT_EQ(mounts_.calls, (std::vector<std::string>{"bind " + target_ + " -> " + source_}));
  EXPECT_TRUE(mounts_.mount_point_existed);
  EXPECT_TRUE((*alias)->Remove().ok());
  EXPECT_TRUE((*alias)->Remove().ok());
  alias->reset();
  EXPECT_EQ(mounts_.calls, (std::vector<std::string>{"bind " + target_ + " -> " + source_, "unmount " + source_}));
  Result<std::string> marker = ReadFile(source_ + "/marker");
  EXPECT_EQ(marker.ok() ? *marker : "", "source") << "the host's source directory is never touched";
}

TEST_F(SourceAliasTest, DestructorRemovesTheAlias) {
  { ASSERT_TRUE(Alias(source_, target_).ok()); }
  EXPECT_EQ(mounts_.calls.back(), "unmount " + source_);
  EXPECT_EQ(mounts_.active, 0);
}

TEST_F(SourceAliasTest, FailedBindUndoesEverythingAndFreesTheLock) {
  mounts_.bind_status = Status::PermissionDenied("mount: not allowed");
  Result<std::unique_ptr<SourceAlias>> alias = Alias(source_, target_);
  ASSERT_FALSE(alias.ok());
  EXPECT_EQ(alias.status().code(), ErrorCode::kPermissionDenied);
  EXPECT_NE(alias.status().message().find(source_), std::string::npos) << alias.status().ToString();
  EXPECT_EQ(mounts_.calls.size(), 1u) << "no unmount of what was never mounted";
  mounts_.bind_status = Status::Ok();
  options_.lock_timeout = 0ms;
  EXPECT_TRUE(Alias(source_, target_).ok()) << "the lock was released";
}

TEST_F(SourceAliasTest, FailedUnmountIsReportedAndStillReleasesTheLock) {
  mounts_.unmount_status = Status::Io("umount: busy");
  Result<std::unique_ptr<SourceAlias>> alias = Alias(source_, target_);
  ASSERT_TRUE(alias.ok());
  Status removed = (*alias)->Remove();
  EXPECT_EQ(removed.code(), ErrorCode::kIo);
  EXPECT_NE(removed.message().find("removing the alias of " + source_), std::string::npos) << removed.ToString();
  mounts_.unmount_status = Status::Ok();
  options_.lock_timeout = 0ms;
  EXPECT_TRUE(Alias(source_, target_).ok());
}

TEST_F(SourceAliasTest, SecondAliasOfOneSourceWaitsForTheLock) {
  Result<std::unique_ptr<SourceAlias>> first = Alias(source_, target_);
  ASSERT_TRUE(first.ok());
  ASSERT_EQ(::mkdir(dir_->Sub("vm-3").c_str(), 0755), 0);
  options_.lock_timeout = 100ms;
  Result<std::unique_ptr<SourceAlias>> second = Alias(source_, dir_->Sub("vm-3"));
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), ErrorCode::kBusy);
  EXPECT_NE(second.status().message().find(AliasLockPath(options_.lock_dir, source_)), std::string::npos)
      << second.status().ToString();
  // Another source is not held up.
  ASSERT_EQ(::mkdir(dir_->Sub("other").c_str(), 0755), 0);
  EXPECT_TRUE(Alias(dir_->Sub("other"), dir_->Sub("vm-3")).ok());
  ASSERT_TRUE((*first)->Remove().ok());
  EXPECT_TRUE(Alias(source_, dir_->Sub("vm-3")).ok());
}

TEST_F(SourceAliasTest, ConcurrentLoadsOfOneSourceNeverOverlap) {
  std::vector<std::string> forks;
  for (int i = 0; i < 6; ++i) {
    forks.push_back(dir_->Sub("fork-" + std::to_string(i)));
    ASSERT_EQ(::mkdir(forks.back().c_str(), 0755), 0);
  }
  options_.lock_timeout = 10s;
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (const std::string& fork : forks) {
    threads.emplace_back([&, fork] {
      Result<std::unique_ptr<SourceAlias>> alias = Alias(source_, fork);
      if (!alias.ok()) {
        ++failures;
        return;
      }
      std::this_thread::sleep_for(20ms);  // "the load"
      if (!(*alias)->Remove().ok()) ++failures;
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(failures, 0);
  EXPECT_EQ(mounts_.max_active, 1) << "one alias per source at a time";
  EXPECT_EQ(mounts_.calls.size(), 12u);
}

TEST_F(SourceAliasTest, MissingSourceGetsPlaceholdersRemovedAfterwards) {
  const std::string gone = dir_->Sub("gone/deeper/vm-1");
  Result<std::unique_ptr<SourceAlias>> alias = Alias(gone, target_);
  ASSERT_TRUE(alias.ok()) << alias.status().ToString();
  EXPECT_TRUE(mounts_.mount_point_existed) << "a bind mount needs its mount point";
  EXPECT_TRUE(Exists(gone));
  ASSERT_TRUE((*alias)->Remove().ok());
  EXPECT_FALSE(Exists(dir_->Sub("gone"))) << "every placeholder is removed";
  const std::string lock = AliasLockPath(options_.lock_dir, gone);
  EXPECT_FALSE(Exists(lock.substr(0, lock.size() - 5) + ".placeholders"));
}

TEST_F(SourceAliasTest, PlaceholdersOfACrashedHolderAreRecovered) {
  const std::string gone = dir_->Sub("gone/vm-1");
  // What a holder that died between creating its placeholders and removing them leaves behind.
  ASSERT_EQ(::mkdir(options_.lock_dir.c_str(), 0700), 0);
  ASSERT_EQ(::mkdir(dir_->Sub("gone").c_str(), 0700), 0);
  ASSERT_EQ(::mkdir(gone.c_str(), 0700), 0);
  const std::string lock = AliasLockPath(options_.lock_dir, gone);
  const std::string intent = lock.substr(0, lock.size() - 5) + ".placeholders";
  ASSERT_TRUE(WriteFile(intent, "{\"source_dir\": \"" + gone + "\", \"created\": [\"" + dir_->Sub("gone") + "\", \"" +
                                    gone + "\"]}")
                  .ok());
  // The next alias of that source (here: once it exists again for real) cleans up first.
  ASSERT_TRUE(Alias(source_, target_).ok());
  EXPECT_TRUE(Exists(gone)) << "another source's lock does not recover this one";
  Result<std::unique_ptr<SourceAlias>> alias = Alias(gone, target_);
  ASSERT_TRUE(alias.ok()) << alias.status().ToString();
  ASSERT_TRUE((*alias)->Remove().ok());
  EXPECT_FALSE(Exists(dir_->Sub("gone")));
  EXPECT_FALSE(Exists(intent));
}

TEST_F(SourceAliasTest, RecoveryLeavesAPlaceholderThatBecameReal) {
  const std::string real = dir_->Sub("real");
  ASSERT_EQ(::mkdir(options_.lock_dir.c_str(), 0700), 0);
  ASSERT_EQ(::mkdir(real.c_str(), 0700), 0);
  ASSERT_TRUE(WriteFile(real + "/data", "someone's").ok());
  const std::string lock = AliasLockPath(options_.lock_dir, real);
  ASSERT_TRUE(WriteFile(lock.substr(0, lock.size() - 5) + ".placeholders", "{\"created\": [\"" + real + "\"]}").ok());
  ASSERT_TRUE(Alias(real, target_).ok());
  EXPECT_TRUE(Exists(real + "/data"));
}

TEST_F(SourceAliasTest, RefusesBadDirectories) {
  auto refused = [&](const std::string& from, const std::string& to) {
    Result<std::unique_ptr<SourceAlias>> alias = Alias(from, to);
    EXPECT_FALSE(alias.ok()) << from << " -> " << to;
    EXPECT_EQ(alias.status().code(), ErrorCode::kInvalidArgument) << alias.status().ToString();
  };
  refused(source_, source_);
  refused(source_, source_ + "/nested");
  refused(target_ + "/inner", target_);
  refused("relative", target_);
  refused(source_ + "/", target_);
  refused(source_ + "/../vm-1", target_);
  ASSERT_TRUE(WriteFile(dir_->Sub("file"), "x").ok());
  refused(dir_->Sub("file"), target_);
  EXPECT_TRUE(mounts_.calls.empty());
}

// ---- the real thing: a mount namespace of the child's own ----

class RealSourceAliasTest : public SourceAliasTest {
 protected:
  void SetUp() override {
    SourceAliasTest::SetUp();
    std::string why;
    if (!test::CanMakeMountNamespaces(&why)) GTEST_SKIP() << why;
    options_.mounts = nullptr;  // the system implementation
  }
};

TEST_F(RealSourceAliasTest, AliasIsSeenOnlyInsideTheForksNamespace) {
  Result<test::NamespaceChild> child = test::NamespaceChild::Start();
  ASSERT_TRUE(child.ok()) << child.status().ToString();
  EXPECT_EQ(child->Read(source_ + "/marker"), "source");
  Result<std::unique_ptr<SourceAlias>> alias =
      SourceAlias::Create(child->pid(), child->pidfd(), PathAlias{source_, target_}, options_);
  ASSERT_TRUE(alias.ok()) << alias.status().ToString();
  EXPECT_EQ(child->Read(source_ + "/marker"), "fork") << "inside: the source path leads to the fork";
  EXPECT_EQ(child->Read(target_ + "/marker"), "fork");
  Result<std::string> host = ReadFile(source_ + "/marker");
  EXPECT_EQ(host.ok() ? *host : "", "source") << "outside: the host and the source see nothing";
  ASSERT_TRUE((*alias)->Remove().ok());
  EXPECT_EQ(child->Read(source_ + "/marker"), "source") << "removed after the load";
}

TEST_F(RealSourceAliasTest, MissingSourceIsAliasedThroughAPlaceholder) {
  Result<test::NamespaceChild> child = test::NamespaceChild::Start();
  ASSERT_TRUE(child.ok()) << child.status().ToString();
  const std::string gone = dir_->Sub("deleted/vm-0");
  Result<std::unique_ptr<SourceAlias>> alias =
      SourceAlias::Create(child->pid(), child->pidfd(), PathAlias{gone, target_}, options_);
  ASSERT_TRUE(alias.ok()) << alias.status().ToString();
  EXPECT_EQ(child->Read(gone + "/marker"), "fork");
  EXPECT_FALSE(Exists(gone + "/marker")) << "the host sees an empty placeholder at most";
  ASSERT_TRUE((*alias)->Remove().ok());
  EXPECT_FALSE(Exists(dir_->Sub("deleted")));
}

// On a host whose mounts are shared (systemd makes / shared), slave propagation is what keeps the
// alias in: mount events flow from the host into the fork's namespace, never back.
TEST_F(RealSourceAliasTest, AliasNeverPropagatesToASharedHost) {
  const std::string shared = dir_->Sub("shared");
  ASSERT_EQ(::mkdir(shared.c_str(), 0755), 0);
  ASSERT_EQ(::mount("fe-test", shared.c_str(), "tmpfs", 0, "size=1m"), 0) << std::strerror(errno);
  struct Unmount {
    std::string path;
    ~Unmount() { ::umount2(path.c_str(), MNT_DETACH); }
  } unmount{shared};
  ASSERT_EQ(::mount(nullptr, shared.c_str(), nullptr, MS_SHARED, nullptr), 0) << std::strerror(errno);
  const std::string source = shared + "/vm-1", target = shared + "/vm-2";
  for (const std::string& d : {source, target, shared + "/late"}) ASSERT_EQ(::mkdir(d.c_str(), 0755), 0);
  ASSERT_TRUE(WriteFile(source + "/marker", "source").ok());
  ASSERT_TRUE(WriteFile(target + "/marker", "fork").ok());

  Result<test::NamespaceChild> child = test::NamespaceChild::Start();
  ASSERT_TRUE(child.ok()) << child.status().ToString();
  Result<std::unique_ptr<SourceAlias>> alias =
      SourceAlias::Create(child->pid(), child->pidfd(), PathAlias{source, target}, options_);
  ASSERT_TRUE(alias.ok()) << alias.status().ToString();
  EXPECT_EQ(child->Read(source + "/marker"), "fork");
  Result<std::string> host = ReadFile(source + "/marker");
  EXPECT_EQ(host.ok() ? *host : "", "source") << "the alias did not propagate to the shared host mount";

  // The other direction still flows: a host mount (and its unmount) reaches the fork's namespace.
  ASSERT_EQ(::mount("fe-test-late", (shared + "/late").c_str(), "tmpfs", 0, "size=1m"), 0);
  ASSERT_TRUE(WriteFile(shared + "/late/file", "late").ok());
  EXPECT_EQ(child->Read(shared + "/late/file"), "late");
  ASSERT_EQ(::umount2((shared + "/late").c_str(), 0), 0);
  EXPECT_NE(child->Read(shared + "/late/file"), "late") << "the host's unmount reached the fork too";

  ASSERT_TRUE((*alias)->Remove().ok());
  EXPECT_EQ(child->Read(source + "/marker"), "source");
}

TEST_F(RealSourceAliasTest, RefusesTheEnginesOwnNamespace) {
  Result<test::NamespaceChild> child = test::NamespaceChild::Start();
  ASSERT_TRUE(child.ok()) << child.status().ToString();
  // Our own pid with a pidfd of a live process: the namespace check must refuse before mounting.
  Result<std::unique_ptr<SourceAlias>> alias =
      SourceAlias::Create(::getpid(), child->pidfd(), PathAlias{source_, target_}, options_);
  ASSERT_FALSE(alias.ok());
  EXPECT_EQ(alias.status().code(), ErrorCode::kInvalidArgument) << alias.status().ToString();
  EXPECT_NE(alias.status().message().find("mount namespace"), std::string::npos);
  Result<std::string> host = ReadFile(source_ + "/marker");
  EXPECT_EQ(host.ok() ? *host : "", "source");
}

TEST_F(RealSourceAliasTest, RemovalAfterTheProcessDiedSucceeds) {
  Result<test::NamespaceChild> child = test::NamespaceChild::Start();
  ASSERT_TRUE(child.ok()) << child.status().ToString();
  Result<std::unique_ptr<SourceAlias>> alias =
      SourceAlias::Create(child->pid(), child->pidfd(), PathAlias{source_, target_}, options_);
  ASSERT_TRUE(alias.ok()) << alias.status().ToString();
  child->Kill();
  EXPECT_TRUE((*alias)->Remove().ok()) << "its namespace, and the alias in it, went with it";
}

}  // namespace
}  // namespace fe::hypervisor::firecracker
