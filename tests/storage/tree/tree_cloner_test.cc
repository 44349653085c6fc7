#include "base/fs_util.h"
#include "storage/tree/tree_cloner.h"

#include <fcntl.h>
#include <linux/io_uring.h>
#include <sys/inotify.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <map>

#include <gtest/gtest.h>

#include "base/deferred_sync.h"
#include "base/unique_fd.h"
#include "storage/loop/loop_filesystem.h"
#include "tests/support/file_util.h"
#include "tests/support/sample_tree.h"
#include "tests/support/scratch.h"

namespace fe::storage::tree {

void PrintTo(IoEngine engine, std::ostream* os) {
  *os << (engine == IoEngine::kSyscalls ? "syscalls" : engine == IoEngine::kUring ? "uring" : "default");
}

namespace {

using test::kGiB;
using test::kKiB;
using test::kMiB;
using test::ScratchFs;

std::string FsName(const ::testing::TestParamInfo<ScratchFs>& info) {
  return std::string(test::ScratchFsName(info.param));
}

struct stat Lstat(const std::string& path) {
  struct stat st {};
  EXPECT_EQ(::lstat(path.c_str(), &st), 0) << path << ": " << std::strerror(errno);
  return st;
}

bool Exists(const std::string& path) {
  struct stat st;
  return ::lstat(path.c_str(), &st) == 0;
}

test::Digest DigestOf(const std::string& path) {
  Result<test::Digest> digest = test::ContentDigest(path);
  EXPECT_TRUE(digest.ok()) << digest.status().ToString();
  return digest.ok() ? *digest : test::Digest{};
}

test::TreeSnapshot Snapshot(const std::string& root) {
  Result<test::TreeSnapshot> snapshot = test::SnapshotTree(root);
  EXPECT_TRUE(snapshot.ok()) << snapshot.status().ToString();
  return snapshot.ok() ? *snapshot : test::TreeSnapshot{};
}

std::vector<std::string> List(const std::string& dir) {
  Result<std::vector<std::string>> names = test::ListDir(dir);
  EXPECT_TRUE(names.ok()) << names.status().ToString();
  return names.ok() ? *names : std::vector<std::string>{};
}

bool HasTemporaryEntry(const std::string& dir) {
  std::vector<std::string> names = List(dir);
  return std::any_of(names.begin(), names.end(), [](const std::string& name) {
    return name.starts_with(".") && name.find("forkengine-tmp") != std::string::npos;
  });
}

bool UringAvailable() {
  io_uring_params params{};
  int fd = static_cast<int>(::syscall(__NR_io_uring_setup, 4, &params));
  if (fd < 0) return false;
  ::close(fd);
  return true;
}

class TreeClonerTest : public test::ScratchTest {
 protected:
  static Result<CloneReport> Clone(const std::string& source, const std::string& target, CloneOptions options = {}) {
    return CloneTree(source, target, options);
  }
};

class TreeClonerFsTest : public TreeClonerTest, public ::testing::WithParamInterface<ScratchFs> {};
class TreeClonerReflinkFsTest : public TreeClonerTest, public ::testing::WithParamInterface<ScratchFs> {};

// ---- content, counts, sharing ----

TEST_P(TreeClonerFsTest, CloneIsIdenticalInContentAndMetadata) {
  FE_SCRATCH_DIR(dir, GetParam());
  Result<test::SampleTree> tree = test::MakeSampleTree(dir + "/src");
  ASSERT_TRUE(tree.ok()) << tree.status().ToString();
  Result<CloneReport> report = Clone(dir + "/src", dir + "/dst");
  ASSERT_TRUE(report.ok()) << report.status().ToString();

  EXPECT_EQ(test::DiffSnapshots(Snapshot(dir + "/src"), Snapshot(dir + "/dst")), "");
  EXPECT_EQ(report->files, tree->files);
  EXPECT_EQ(report->directories, tree->directories);
  EXPECT_EQ(report->symlinks, tree->symlinks);
  EXPECT_EQ(report->hardlinks, tree->hardlinks);
  EXPECT_EQ(report->logical_bytes, tree->logical_bytes);
  EXPECT_TRUE(report->skipped.empty());
  EXPECT_GT(report->total.count(), 0);
  EXPECT_FALSE(HasTemporaryEntry(dir));
}

TEST_P(TreeClonerFsTest, CloneKeepsHolesSparse) {
  // A 10 GiB disk image holding 200 MiB of data must cost ~200 MiB in the clone, whatever the path.
  FE_SCRATCH_DIR(dir, GetParam());
  ASSERT_EQ(::mkdir((dir + "/src").c_str(), 0755), 0);
  const uint64_t data = 200 * kMiB;
  FE_ASSERT_OK(test::MakeSparseFile(dir + "/src/disk.img", 10 * kGiB, test::SpreadRanges(10 * kGiB, 50, 4 * kMiB), 42));
  Result<CloneReport> report = Clone(dir + "/src", dir + "/dst");
  ASSERT_TRUE(report.ok()) << report.status().ToString();

  const std::string clone = dir + "/dst/disk.img";
  struct stat st = Lstat(clone);
  EXPECT_EQ(static_cast<uint64_t>(st.st_size), 10 * kGiB);
  uint64_t allocated = static_cast<uint64_t>(st.st_blocks) * 512;
  EXPECT_GE(allocated, data);
  EXPECT_LE(allocated, data + 16 * kMiB) << "holes were filled: " << allocated / kMiB << " MiB";
  EXPECT_EQ(DigestOf(dir + "/src/disk.img"), DigestOf(clone));
  EXPECT_EQ(report->logical_bytes, 10 * kGiB);
  if (GetParam() == ScratchFs::kExt4) {
    EXPECT_EQ(report->reflinked_bytes, 0u);
    EXPECT_EQ(report->copied_bytes, data);
    EXPECT_EQ(report->fallback_files, 1u);
    EXPECT_EQ(report->mechanism, "copy");
  } else {
    // The data shared, not the holes (it was the logical 10 GiB).
    EXPECT_GE(report->reflinked_bytes, data);
    EXPECT_LE(report->reflinked_bytes, data + 16 * kMiB);
    EXPECT_EQ(report->copied_bytes, 0u);
    EXPECT_EQ(report->mechanism, "reflink");
  }
}

TEST_P(TreeClonerFsTest, CloneNeverWritesSource) {
  FE_SCRATCH_DIR(dir, GetParam());
  ASSERT_TRUE(test::MakeSampleTree(dir + "/src").ok());
  test::TreeSnapshot before = Snapshot(dir + "/src");
  for (DataMode mode : {DataMode::kReflink, DataMode::kCopy}) {
    CloneOptions options;
    options.data_mode = mode;
    std::string target = dir + (mode == DataMode::kReflink ? "/dst-reflink" : "/dst-copy");
    Result<CloneReport> report = Clone(dir + "/src", target, options);
    ASSERT_TRUE(report.ok()) << report.status().ToString();
  }
  // ctime included: not even metadata of a source inode may have been touched.
  EXPECT_EQ(test::DiffSnapshots(before, Snapshot(dir + "/src"), {.ctime = true}), "");
}

TEST_P(TreeClonerReflinkFsTest, CloneSharesExtents) {
  FE_SCRATCH_DIR(dir, GetParam());
  ASSERT_EQ(::mkdir((dir + "/src").c_str(), 0755), 0);
  FE_ASSERT_OK(test::WritePatternFile(dir + "/src/memory.bin", 16 * kMiB, 1));
  FE_ASSERT_OK(test::WritePatternFile(dir + "/src/small.bin", 256 * kKiB, 2));
  Result<CloneReport> report = Clone(dir + "/src", dir + "/dst");
  ASSERT_TRUE(report.ok()) << report.status().ToString();

  for (const char* name : {"/memory.bin", "/small.bin"}) {
    Result<uint64_t> clone_shared = test::SharedBytes(dir + "/dst" + name);
    Result<uint64_t> source_shared = test::SharedBytes(dir + "/src" + name);
    ASSERT_TRUE(clone_shared.ok()) << clone_shared.status().ToString();
    ASSERT_TRUE(source_shared.ok()) << source_shared.status().ToString();
    uint64_t size = static_cast<uint64_t>(Lstat(dir + "/src" + name).st_size);
    EXPECT_GE(*clone_shared, size) << name;
    EXPECT_GE(*source_shared, size) << name;
    EXPECT_EQ(DigestOf(dir + "/src" + name), DigestOf(dir + "/dst" + name)) << name;
  }
  EXPECT_EQ(report->mechanism, "reflink");
  EXPECT_EQ(report->reflinked_bytes, 16 * kMiB + 256 * kKiB);
  EXPECT_EQ(report->copied_bytes, 0u);
  EXPECT_EQ(report->fallback_files, 0u);
}

TEST_P(TreeClonerReflinkFsTest, WritingCloneLeavesSourceUnchanged) {
  FE_SCRATCH_DIR(dir, GetParam());
  ASSERT_TRUE(test::MakeSampleTree(dir + "/src").ok());
  Result<CloneReport> report = Clone(dir + "/src", dir + "/dst");
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  test::TreeSnapshot source = Snapshot(dir + "/src");

  // Write into shared extents of the clone, in several ways.
  FE_ASSERT_OK(test::OverwriteRange(dir + "/dst/memory.bin", 1 * kMiB, 2 * kMiB, 77));
  FE_ASSERT_OK(test::OverwriteRange(dir + "/dst/disk.img", 0, 64 * kKiB, 78));
  FE_ASSERT_OK(test::OverwriteRange(dir + "/dst/state/hard2", 0, 4 * kKiB, 79));  // via hard link
  ASSERT_EQ(::truncate((dir + "/dst/state/a.txt").c_str(), 10), 0);
  ASSERT_EQ(::chmod((dir + "/dst/config.json").c_str(), 0600), 0);
  FE_ASSERT_OK(test::SetXattr(dir + "/dst/config.json", "user.forkengine.note", "changed"));

  EXPECT_EQ(test::DiffSnapshots(source, Snapshot(dir + "/src"), {.ctime = true}), "");
  EXPECT_NE(DigestOf(dir + "/src/memory.bin"), DigestOf(dir + "/dst/memory.bin"));

  // And the other way round: writing the source leaves the clone alone.
  test::TreeSnapshot clone = Snapshot(dir + "/dst");
  FE_ASSERT_OK(test::OverwriteRange(dir + "/src/memory.bin", 5 * kMiB, kMiB, 80));
  EXPECT_EQ(test::DiffSnapshots(clone, Snapshot(dir + "/dst"), {.ctime = true}), "");
}

INSTANTIATE_TEST_SUITE_P(Filesystems, TreeClonerFsTest,
                         ::testing::Values(ScratchFs::kXfs, ScratchFs::kBtrfs, ScratchFs::kExt4), FsName);
INSTANTIATE_TEST_SUITE_P(ReflinkFilesystems, TreeClonerReflinkFsTest,
                         ::testing::Values(ScratchFs::kXfs, ScratchFs::kBtrfs), FsName);

// ---- data modes and io engines ----

TEST_F(TreeClonerTest, ForcedCopyOnXfsDoesNoFiclone) {
  FE_SCRATCH_DIR(dir, ScratchFs::kXfs);
  Result<test::SampleTree> tree = test::MakeSampleTree(dir + "/src");
  ASSERT_TRUE(tree.ok()) << tree.status().ToString();
  CloneOptions options;
  options.data_mode = DataMode::kCopy;
  Result<CloneReport> report = Clone(dir + "/src", dir + "/dst", options);
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_EQ(report->reflinked_bytes, 0u);
  EXPECT_EQ(report->mechanism, "copy");
  EXPECT_EQ(report->copied_bytes, tree->data_bytes);
  EXPECT_EQ(report->fallback_files, 0u);  // nothing was refused: FICLONE was never tried
  EXPECT_EQ(test::DiffSnapshots(Snapshot(dir + "/src"), Snapshot(dir + "/dst")), "");
  // The sparse disk image stays sparse on the copy path too.
  Result<uint64_t> allocated = test::AllocatedBytes(dir + "/dst/disk.img");
  ASSERT_TRUE(allocated.ok());
  EXPECT_LE(*allocated, 4 * kMiB + 512 * kKiB);
}

class TreeClonerEngineTest : public TreeClonerTest, public ::testing::WithParamInterface<IoEngine> {};

TEST_P(TreeClonerEngineTest, BothIoEnginesCloneIdenticallyOnXfs) {
  FE_SCRATCH_DIR(dir, ScratchFs::kXfs);
  Result<test::SampleTree> tree = test::MakeSampleTree(dir + "/src");
  ASSERT_TRUE(tree.ok()) << tree.status().ToString();
  // Enough entries for several batches per directory.
  ASSERT_EQ(::mkdir((dir + "/src/many").c_str(), 0755), 0);
  for (int i = 0; i < 300; ++i) {
    FE_ASSERT_OK(test::WriteFile(dir + "/src/many/f" + std::to_string(i), std::to_string(i)));
  }
  CloneOptions options;
  options.io_engine = GetParam();
  Result<CloneReport> report = Clone(dir + "/src", dir + "/dst", options);
  ASSERT_TRUE(report.ok()) << report.status().ToString();

  EXPECT_EQ(test::DiffSnapshots(Snapshot(dir + "/src"), Snapshot(dir + "/dst")), "");
  EXPECT_EQ(report->files, tree->files + 300);
  EXPECT_EQ(report->hardlinks, tree->hardlinks);
  Result<uint64_t> shared = test::SharedBytes(dir + "/dst/memory.bin");
  ASSERT_TRUE(shared.ok()) << shared.status().ToString();
  EXPECT_GE(*shared, 9 * kMiB);
  if (GetParam() == IoEngine::kSyscalls) {
    EXPECT_EQ(report->io_engine, "syscalls");
  } else if (UringAvailable()) {
    EXPECT_EQ(report->io_engine, "io_uring");
  } else {
    EXPECT_EQ(report->io_engine, "syscalls");  // the documented fallback
  }
}

INSTANTIATE_TEST_SUITE_P(Engines, TreeClonerEngineTest, ::testing::Values(IoEngine::kSyscalls, IoEngine::kUring),
                         [](const auto& info) { return info.param == IoEngine::kSyscalls ? "Syscalls" : "Uring"; });

TEST_F(TreeClonerTest, AcrossFilesystemsFallsBackToCopyPerFile) {
  FE_SCRATCH_DIR(xfs, ScratchFs::kXfs);
  FE_SCRATCH_DIR(btrfs, ScratchFs::kBtrfs);
  Result<test::SampleTree> tree = test::MakeSampleTree(xfs + "/src");
  ASSERT_TRUE(tree.ok()) << tree.status().ToString();
  Result<CloneReport> report = Clone(xfs + "/src", btrfs + "/dst");
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_EQ(test::DiffSnapshots(Snapshot(xfs + "/src"), Snapshot(btrfs + "/dst")), "");
  EXPECT_EQ(report->reflinked_bytes, 0u);
  EXPECT_EQ(report->fallback_files, tree->files - 1);  // all but the empty file
  EXPECT_EQ(report->copied_bytes, tree->data_bytes);
  EXPECT_EQ(report->mechanism, "copy");
}

// ---- symlinks, hard links, special files ----

TEST_F(TreeClonerTest, SymlinksStaySymlinksAndNothingOutsideIsRead) {
  FE_SCRATCH_DIR(dir, ScratchFs::kXfs);
  const std::string outside = dir + "/outside";
  ASSERT_EQ(::mkdir(outside.c_str(), 0755), 0);
  FE_ASSERT_OK(test::WritePatternFile(outside + "/secret.bin", 64 * kKiB, 5));
  ASSERT_EQ(::mkdir((dir + "/src").c_str(), 0755), 0);
  ASSERT_EQ(::mkdir((dir + "/src/sub").c_str(), 0755), 0);
  ASSERT_EQ(::symlink("/etc", (dir + "/src/etc").c_str()), 0);
  ASSERT_EQ(::symlink("/etc/passwd", (dir + "/src/passwd").c_str()), 0);
  ASSERT_EQ(::symlink(outside.c_str(), (dir + "/src/outside_abs").c_str()), 0);
  ASSERT_EQ(::symlink("../../outside", (dir + "/src/sub/outside_rel").c_str()), 0);
  ASSERT_EQ(::symlink("../outside/secret.bin", (dir + "/src/secret_file").c_str()), 0);
  FE_ASSERT_OK(test::WriteFile(dir + "/src/sub/inside.txt", "inside"));

  // Any open or read beneath `outside` during the clone shows up here.
  UniqueFd watch(::inotify_init1(IN_NONBLOCK | IN_CLOEXEC));
  ASSERT_TRUE(watch.valid());
  ASSERT_GE(::inotify_add_watch(watch.get(), outside.c_str(), IN_OPEN | IN_ACCESS), 0);
  ASSERT_GE(::inotify_add_watch(watch.get(), (outside + "/secret.bin").c_str(), IN_OPEN | IN_ACCESS), 0);

  Result<CloneReport> report = Clone(dir + "/src", dir + "/dst");
  ASSERT_TRUE(report.ok()) << report.status().ToString();

  char events[4096];
  ssize_t n = ::read(watch.get(), events, sizeof events);
  EXPECT_LT(n, 0) << "the clone opened or read something outside the source tree";
  EXPECT_EQ(errno, EAGAIN);

  test::TreeSnapshot clone = Snapshot(dir + "/dst");
  EXPECT_EQ(test::DiffSnapshots(Snapshot(dir + "/src"), clone), "");
  for (const char* link : {"etc", "passwd", "outside_abs", "sub/outside_rel", "secret_file"}) {
    ASSERT_TRUE(clone.contains(link)) << link;
    EXPECT_EQ(clone[link].type, 'l') << link;
  }
  EXPECT_EQ(clone["etc"].link_target, "/etc");
  EXPECT_EQ(clone["sub/outside_rel"].link_target, "../../outside");
  EXPECT_EQ(report->symlinks, 5u);
  EXPECT_EQ(report->files, 1u);
  EXPECT_EQ(report->logical_bytes, 6u);
}

TEST_F(TreeClonerTest, SourceRootThatIsASymlinkIsRefused) {
  FE_SCRATCH_DIR(dir, ScratchFs::kXfs);
  ASSERT_TRUE(test::MakeSampleTree(dir + "/real").ok());
  ASSERT_EQ(::symlink("real", (dir + "/src").c_str()), 0);
  Result<CloneReport> report = Clone(dir + "/src", dir + "/dst");
  ASSERT_FALSE(report.ok());
  EXPECT_NE(report.status().message().find(dir + "/src"), std::string::npos) << report.status().message();
  EXPECT_FALSE(Exists(dir + "/dst"));
  EXPECT_FALSE(HasTemporaryEntry(dir));
}

TEST_F(TreeClonerTest, HardLinksArePreservedWithinTheClone) {
  FE_SCRATCH_DIR(dir, ScratchFs::kXfs);
  const std::string src = dir + "/src";
  ASSERT_EQ(::mkdir(src.c_str(), 0755), 0);
  ASSERT_EQ(::mkdir((src + "/wide").c_str(), 0755), 0);
  ASSERT_EQ(::mkdir((src + "/other").c_str(), 0755), 0);
  // 200 files: the first and last names of the group land in different batches of the directory.
  for (int i = 0; i < 200; ++i) {
    FE_ASSERT_OK(test::WriteFile(src + "/wide/f" + std::to_string(i), "file " + std::to_string(i)));
  }
  FE_ASSERT_OK(test::WritePatternFile(src + "/wide/linked", 128 * kKiB, 9));
  ASSERT_EQ(::link((src + "/wide/linked").c_str(), (src + "/wide/zz_linked").c_str()), 0);
  ASSERT_EQ(::link((src + "/wide/linked").c_str(), (src + "/other/linked").c_str()), 0);
  ASSERT_EQ(::link((src + "/wide/f7").c_str(), (src + "/f7_again").c_str()), 0);

  Result<CloneReport> report = Clone(src, dir + "/dst");
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_EQ(report->hardlinks, 3u);
  EXPECT_EQ(report->files, 201u);
  EXPECT_EQ(test::DiffSnapshots(Snapshot(src), Snapshot(dir + "/dst")), "");

  struct stat a = Lstat(dir + "/dst/wide/linked");
  struct stat b = Lstat(dir + "/dst/wide/zz_linked");
  struct stat c = Lstat(dir + "/dst/other/linked");
  struct stat source = Lstat(src + "/wide/linked");
  EXPECT_EQ(a.st_ino, b.st_ino);
  EXPECT_EQ(a.st_ino, c.st_ino);
  EXPECT_EQ(a.st_nlink, 3u);
  EXPECT_NE(a.st_ino, source.st_ino);
  EXPECT_EQ(Lstat(dir + "/dst/f7_again").st_ino, Lstat(dir + "/dst/wide/f7").st_ino);
  EXPECT_EQ(source.st_nlink, 3u);  // the source gained no links
}

TEST_F(TreeClonerTest, HardLinkWithANameOutsideTheTreeIsClonedOnce) {
  FE_SCRATCH_DIR(dir, ScratchFs::kXfs);
  ASSERT_EQ(::mkdir((dir + "/src").c_str(), 0755), 0);
  FE_ASSERT_OK(test::WriteFile(dir + "/src/file", "shared with outside"));
  ASSERT_EQ(::link((dir + "/src/file").c_str(), (dir + "/outside-name").c_str()), 0);
  Result<CloneReport> report = Clone(dir + "/src", dir + "/dst");
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_EQ(report->hardlinks, 0u);
  EXPECT_EQ(report->files, 1u);
  EXPECT_EQ(Lstat(dir + "/dst/file").st_nlink, 1u);
  Result<std::string> content = test::ReadFile(dir + "/dst/file");
  ASSERT_TRUE(content.ok());
  EXPECT_EQ(*content, "shared with outside");
}

TEST_F(TreeClonerTest, SocketsFifosAndDevicesAreSkippedAndReported) {
  FE_SCRATCH_DIR(dir, ScratchFs::kXfs);
  const std::string src = dir + "/src";
  ASSERT_EQ(::mkdir(src.c_str(), 0755), 0);
  ASSERT_EQ(::mkdir((src + "/run").c_str(), 0755), 0);
  FE_ASSERT_OK(test::WriteFile(src + "/run/keep.txt", "kept"));
  {
    // A real listening socket, bound through /proc/self/fd to stay under sun_path's 108 bytes.
    UniqueFd run(::open((src + "/run").c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    UniqueFd sock(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    ASSERT_TRUE(run.valid() && sock.valid());
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::snprintf(address.sun_path, sizeof address.sun_path, "/proc/self/fd/%d/api.sock", run.get());
    ASSERT_EQ(::bind(sock.get(), reinterpret_cast<sockaddr*>(&address), sizeof address), 0) << std::strerror(errno);
    ASSERT_EQ(::listen(sock.get(), 1), 0);
  }
  ASSERT_EQ(::mkfifo((src + "/run/control.fifo").c_str(), 0600), 0);
  const bool have_device = ::mknod((src + "/null").c_str(), S_IFCHR | 0666, makedev(1, 3)) == 0;

  Result<CloneReport> report = Clone(src, dir + "/dst");
  ASSERT_TRUE(report.ok()) << report.status().ToString();

  auto reason_for = [&](const std::string& path) -> std::string {
    for (const SkippedEntry& entry : report->skipped) {
      if (entry.path == path) return entry.reason;
    }
    return "<not reported>";
  };
  EXPECT_NE(reason_for("run/api.sock").find("socket"), std::string::npos) << reason_for("run/api.sock");
  EXPECT_NE(reason_for("run/control.fifo").find("fifo"), std::string::npos) << reason_for("run/control.fifo");
  EXPECT_EQ(report->skipped.size(), have_device ? 3u : 2u);
  if (have_device) {
    EXPECT_NE(reason_for("null").find("device"), std::string::npos) << reason_for("null");
  }
  EXPECT_FALSE(Exists(dir + "/dst/run/api.sock"));
  EXPECT_FALSE(Exists(dir + "/dst/run/control.fifo"));
  EXPECT_FALSE(Exists(dir + "/dst/null"));
  EXPECT_TRUE(Exists(dir + "/dst/run/keep.txt"));
  EXPECT_EQ(report->files, 1u);
}

// ---- metadata ----

class TreeClonerMetadataTest : public TreeClonerTest, public ::testing::WithParamInterface<ScratchFs> {};

TEST_P(TreeClonerMetadataTest, PreservesModesOwnersTimesAndXattrs) {
  if (::geteuid() != 0) GTEST_SKIP() << "giving files to other owners (chown 1234:5678) needs root";
  FE_SCRATCH_DIR(dir, GetParam());
  const std::string src = dir + "/src";
  ASSERT_EQ(::mkdir(src.c_str(), 0755), 0);
  ASSERT_EQ(::mkdir((src + "/private").c_str(), 0755), 0);
  FE_ASSERT_OK(test::WriteFile(src + "/setuid", "#!/bin/true\n"));
  FE_ASSERT_OK(test::WriteFile(src + "/readonly", "ro"));
  FE_ASSERT_OK(test::WriteFile(src + "/private/key", "k"));
  ASSERT_EQ(::symlink("setuid", (src + "/link").c_str()), 0);

  // chown clears set-id bits, so modes are set after owners here and must survive the clone.
  ASSERT_EQ(::chown((src + "/setuid").c_str(), 1234, 5678), 0);
  ASSERT_EQ(::chmod((src + "/setuid").c_str(), 04755), 0);
  ASSERT_EQ(::chmod((src + "/readonly").c_str(), 0444), 0);
  ASSERT_EQ(::chown((src + "/private/key").c_str(), 4321, 8765), 0);
  ASSERT_EQ(::chmod((src + "/private/key").c_str(), 0600), 0);
  ASSERT_EQ(::chown((src + "/private").c_str(), 1234, 5678), 0);
  ASSERT_EQ(::chmod((src + "/private").c_str(), 02710), 0);
  ASSERT_EQ(::lchown((src + "/link").c_str(), 1234, 5678), 0);
  ASSERT_EQ(::chown(src.c_str(), 1234, 5678), 0);
  ASSERT_EQ(::chmod(src.c_str(), 0750), 0);

  const std::string binary("\0\x01\xfe\xff value", 10);
  FE_ASSERT_OK(test::SetXattr(src + "/setuid", "user.forkengine.text", "hello"));
  FE_ASSERT_OK(test::SetXattr(src + "/setuid", "user.forkengine.binary", binary));
  FE_ASSERT_OK(test::SetXattr(src + "/readonly", "user.forkengine.large", std::string(2000, 'x')));
  FE_ASSERT_OK(test::SetXattr(src + "/private", "user.forkengine.dir", "d"));
  FE_ASSERT_OK(test::SetXattr(src, "user.forkengine.root", "r"));

  // Files: old, distinct atime and mtime with odd nanoseconds. Directories: atime recent and later
  // than mtime so that listing them (relatime) does not move it.
  const int64_t now =
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
  const int64_t file_atime = 981'173'106'123'456'789;  // 2001-02-03
  const int64_t file_mtime = 1'012'345'678'987'654'321;
  const int64_t dir_atime = now - 3600'000'000'000 + 111;
  const int64_t dir_mtime = now - 7200'000'000'000 + 222;
  for (const char* file : {"/setuid", "/readonly", "/private/key", "/link"}) {
    FE_ASSERT_OK(test::SetTimes(src + file, file_atime, file_mtime));
  }
  FE_ASSERT_OK(test::SetTimes(src + "/private", dir_atime, dir_mtime));
  FE_ASSERT_OK(test::SetTimes(src, dir_atime, dir_mtime));

  std::map<std::string, struct stat> before;
  for (const char* path : {"", "/setuid", "/readonly", "/private", "/private/key", "/link"}) {
    before[path] = Lstat(src + path);
  }

  Result<CloneReport> report = Clone(src, dir + "/dst");
  ASSERT_TRUE(report.ok()) << report.status().ToString();

  for (const auto& [path, want] : before) {
    const std::string name = path.empty() ? "<root>" : path;
    struct stat got = Lstat(dir + "/dst" + path);
    EXPECT_EQ(got.st_mode, want.st_mode) << name << std::oct << " " << got.st_mode;
    EXPECT_EQ(got.st_uid, want.st_uid) << name;
    EXPECT_EQ(got.st_gid, want.st_gid) << name;
    EXPECT_EQ(test::ToNs(got.st_mtim), test::ToNs(want.st_mtim)) << name;
    EXPECT_EQ(test::ToNs(got.st_atim), test::ToNs(want.st_atim)) << name;
    Result<std::map<std::string, std::string>> want_xattrs = test::Xattrs(src + path);
    Result<std::map<std::string, std::string>> got_xattrs = test::Xattrs(dir + "/dst" + path);
    ASSERT_TRUE(want_xattrs.ok() && got_xattrs.ok());
    EXPECT_EQ(*got_xattrs, *want_xattrs) << name;
  }
  EXPECT_EQ(before["/setuid"].st_mode & 07777, 04755u);  // the fixture itself is right
  EXPECT_EQ(test::ToNs(before["/setuid"].st_atim), file_atime);
}

INSTANTIATE_TEST_SUITE_P(Filesystems, TreeClonerMetadataTest,
                         ::testing::Values(ScratchFs::kXfs, ScratchFs::kBtrfs, ScratchFs::kExt4), FsName);

// ---- refusals and failures ----

TEST_F(TreeClonerTest, ExistingDestinationIsAlreadyExistsAndUntouched) {
  FE_SCRATCH_DIR(dir, ScratchFs::kXfs);
  ASSERT_TRUE(test::MakeSampleTree(dir + "/src").ok());
  ASSERT_EQ(::mkdir((dir + "/dst-dir").c_str(), 0755), 0);
  FE_ASSERT_OK(test::WriteFile(dir + "/dst-dir/marker", "mine"));
  FE_ASSERT_OK(test::WriteFile(dir + "/dst-file", "a file"));
  ASSERT_EQ(::symlink("nowhere", (dir + "/dst-dangling").c_str()), 0);
  test::TreeSnapshot before = Snapshot(dir);

  for (const char* name : {"/dst-dir", "/dst-file", "/dst-dangling"}) {
    Result<CloneReport> report = Clone(dir + "/src", dir + name);
    ASSERT_FALSE(report.ok()) << name;
    EXPECT_EQ(report.status().code(), ErrorCode::kAlreadyExists) << report.status().ToString();
    EXPECT_NE(report.status().message().find(dir + name), std::string::npos) << report.status().message();
  }
  EXPECT_FALSE(Exists(dir + "/nowhere"));  // the dangling symlink was not followed
  EXPECT_EQ(test::DiffSnapshots(before, Snapshot(dir), {.ctime = true, .root_times = false}), "");
}

TEST_F(TreeClonerTest, MissingSourceIsNotFoundAndCreatesNothing) {
  FE_SCRATCH_DIR(dir, ScratchFs::kXfs);
  Result<CloneReport> report = Clone(dir + "/no-such-source", dir + "/dst");
  ASSERT_FALSE(report.ok());
  EXPECT_EQ(report.status().code(), ErrorCode::kNotFound) << report.status().ToString();
  EXPECT_NE(report.status().message().find(dir + "/no-such-source"), std::string::npos) << report.status().message();
  EXPECT_TRUE(List(dir).empty());
}

TEST_F(TreeClonerTest, NamesThatAreNotOneComponentAreInvalid) {
  FE_SCRATCH_DIR(dir, ScratchFs::kXfs);
  ASSERT_TRUE(test::MakeSampleTree(dir + "/src").ok());
  UniqueFd parent(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  ASSERT_TRUE(parent.valid());
  for (auto [source, target] : std::vector<std::pair<std::string, std::string>>{{"src/state", "dst"},
                                                                                {"src", "a/b"},
                                                                                {"src", ".."},
                                                                                {"src", "."},
                                                                                {"..", "dst"},
                                                                                {"", "dst"},
                                                                                {"src", ""}}) {
    Result<CloneReport> report = CloneTree(parent.get(), source, parent.get(), target, {});
    ASSERT_FALSE(report.ok()) << source << " -> " << target;
    EXPECT_EQ(report.status().code(), ErrorCode::kInvalidArgument)
        << source << " -> " << target << ": " << report.status().ToString();
  }
  EXPECT_EQ(List(dir), std::vector<std::string>{"src"});
}

TEST_F(TreeClonerTest, FdInterfaceClonesBetweenDirectories) {
  FE_SCRATCH_DIR(dir, ScratchFs::kXfs);
  ASSERT_EQ(::mkdir((dir + "/a").c_str(), 0755), 0);
  ASSERT_EQ(::mkdir((dir + "/b").c_str(), 0755), 0);
  ASSERT_TRUE(test::MakeSampleTree(dir + "/a/vol").ok());
  UniqueFd a(::open((dir + "/a").c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  UniqueFd b(::open((dir + "/b").c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  Result<CloneReport> report = CloneTree(a.get(), "vol", b.get(), "copy", {});
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_EQ(test::DiffSnapshots(Snapshot(dir + "/a/vol"), Snapshot(dir + "/b/copy")), "");
  EXPECT_EQ(List(dir + "/b"), std::vector<std::string>{"copy"});
}

TEST_F(TreeClonerTest, FailureMidCloneLeavesNoDestinationAndNoTemporaryTree) {
  // ENOSPC half-way: 40 MiB of data into a 16 MiB ext4 filesystem (copy path, different devices).
  FE_REQUIRE_LOOP();
  FE_SCRATCH_DIR(dir, ScratchFs::kExt4);
  FE_SCRATCH(host, test::Scratch::HostDir());
  loop::LoopFilesystemOptions small;
  small.type = loop::LoopFilesystemType::kExt4;
  small.image_path = host + "/" + test::CurrentTestName() + ".img";
  small.size_bytes = 16 * kMiB;
  small.mount_point = host + "/" + test::CurrentTestName() + ".mnt";
  Result<loop::LoopFilesystem> fs = loop::LoopFilesystem::Open(small);
  ASSERT_TRUE(fs.ok()) << fs.status().ToString();
  const std::string target_parent = small.mount_point;

  const std::string src = dir + "/src";
  ASSERT_EQ(::mkdir(src.c_str(), 0755), 0);
  ASSERT_EQ(::mkdir((src + "/sub").c_str(), 0755), 0);
  for (int i = 0; i < 10; ++i) {
    FE_ASSERT_OK(test::WritePatternFile(src + "/sub/data" + std::to_string(i), 4 * kMiB, 100 + i));
    FE_ASSERT_OK(test::WriteFile(src + "/small" + std::to_string(i), "small"));
  }
  test::TreeSnapshot source_before = Snapshot(src);
  const std::vector<std::string> listing_before = List(target_parent);
  ::sync();
  struct statfs free_before;
  ASSERT_EQ(::statfs(target_parent.c_str(), &free_before), 0);

  Result<CloneReport> report = Clone(src, target_parent + "/dst");
  ASSERT_FALSE(report.ok()) << "40 MiB fit into a 16 MiB filesystem?";
  EXPECT_EQ(report.status().code(), ErrorCode::kNoSpace) << report.status().ToString();
  EXPECT_NE(report.status().message().find(target_parent + "/dst"), std::string::npos) << report.status().message();

  EXPECT_EQ(List(target_parent), listing_before);  // no destination, no temporary tree
  EXPECT_FALSE(HasTemporaryEntry(target_parent));
  ::syncfs(UniqueFd(::open(target_parent.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC)).get());
  struct statfs free_after;
  ASSERT_EQ(::statfs(target_parent.c_str(), &free_after), 0);
  EXPECT_GE(free_after.f_bfree * free_after.f_bsize + 256 * kKiB, free_before.f_bfree * free_before.f_bsize)
      << "space of the abandoned temporary tree was not freed";
  EXPECT_EQ(test::DiffSnapshots(source_before, Snapshot(src), {.ctime = true}), "");
  FE_EXPECT_OK(fs->Close());
}

// ---- shapes ----

TEST_F(TreeClonerTest, EmptyDirectoryClonesWithItsMetadata) {
  FE_SCRATCH_DIR(dir, ScratchFs::kXfs);
  ASSERT_EQ(::mkdir((dir + "/src").c_str(), 0755), 0);
  ASSERT_EQ(::chmod((dir + "/src").c_str(), 0701), 0);
  FE_ASSERT_OK(test::SetTimes(dir + "/src", 1'500'000'000'000'000'001, 1'400'000'000'000'000'002));
  Result<CloneReport> report = Clone(dir + "/src", dir + "/dst");
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_EQ(report->directories, 1u);
  EXPECT_EQ(report->files, 0u);
  EXPECT_EQ(test::DiffSnapshots(Snapshot(dir + "/src"), Snapshot(dir + "/dst")), "");
}

TEST_F(TreeClonerTest, DeepAndWideTreesCloneCompletely) {
  FE_SCRATCH_DIR(dir, ScratchFs::kXfs);
  std::string path = dir + "/src";
  ASSERT_EQ(::mkdir(path.c_str(), 0755), 0);
  const std::string src = path;
  for (int depth = 0; depth < 64; ++depth) {
    path += "/d" + std::to_string(depth);
    ASSERT_EQ(::mkdir(path.c_str(), 0755), 0);
    FE_ASSERT_OK(test::WriteFile(path + "/level", std::to_string(depth)));
  }
  ASSERT_EQ(::mkdir((src + "/wide").c_str(), 0755), 0);
  for (int i = 0; i < 40; ++i) {
    std::string sub = src + "/wide/s" + std::to_string(i);
    ASSERT_EQ(::mkdir(sub.c_str(), 0755), 0);
    for (int j = 0; j < 10; ++j) FE_ASSERT_OK(test::WriteFile(sub + "/f" + std::to_string(j), "x"));
  }
  Result<CloneReport> report = Clone(src, dir + "/dst");
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_EQ(report->directories, 1u + 64 + 1 + 40);
  EXPECT_EQ(report->files, 64u + 400);
  EXPECT_EQ(test::DiffSnapshots(Snapshot(src), Snapshot(dir + "/dst")), "");
}

TEST_F(TreeClonerTest, NonDurableCloneIsComplete) {
  FE_SCRATCH_DIR(dir, ScratchFs::kExt4);
  ASSERT_TRUE(test::MakeSampleTree(dir + "/src").ok());
  CloneOptions options;
  options.durable = false;
  Result<CloneReport> report = Clone(dir + "/src", dir + "/dst", options);
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_EQ(test::DiffSnapshots(Snapshot(dir + "/src"), Snapshot(dir + "/dst")), "");
}

// A fork clones inside a DeferredSync scope (a live fork even while its source is paused): the clone
// leaves its durability to the scope's one syncfs, on the target's filesystem.
TEST_F(TreeClonerTest, DurableCloneInsideADeferredSyncScopeLeavesItsSyncToTheScope) {
  FE_SCRATCH_DIR(dir, ScratchFs::kXfs);
  ASSERT_TRUE(test::MakeSampleTree(dir + "/src").ok());
  std::vector<dev_t> synced;
  DeferredSync scope([&](int fd) {
    struct stat st {};
    EXPECT_EQ(::fstat(fd, &st), 0);
    synced.push_back(st.st_dev);
    return 0;
  });
  Result<CloneReport> report = Clone(dir + "/src", dir + "/dst");
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_TRUE(synced.empty());
  ASSERT_TRUE(scope.Sync().ok());
  EXPECT_EQ(synced, std::vector<dev_t>{Lstat(dir + "/dst").st_dev});
  EXPECT_EQ(test::DiffSnapshots(Snapshot(dir + "/src"), Snapshot(dir + "/dst")), "");
}

TEST_F(TreeClonerTest, CloneOfACloneIsIdentical) {
  FE_SCRATCH_DIR(dir, ScratchFs::kBtrfs);
  ASSERT_TRUE(test::MakeSampleTree(dir + "/src").ok());
  ASSERT_TRUE(Clone(dir + "/src", dir + "/gen1").ok());
  Result<CloneReport> report = Clone(dir + "/gen1", dir + "/gen2");
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_EQ(test::DiffSnapshots(Snapshot(dir + "/src"), Snapshot(dir + "/gen2")), "");
}

// ---- RemoveTree ----

TEST_F(TreeClonerTest, RemoveTreeDeletesEverythingWithoutFollowingSymlinks) {
  FE_SCRATCH_DIR(dir, ScratchFs::kXfs);
  ASSERT_TRUE(test::MakeSampleTree(dir + "/victim").ok());
  ASSERT_EQ(::mkdir((dir + "/outside").c_str(), 0755), 0);
  FE_ASSERT_OK(test::WriteFile(dir + "/outside/precious", "keep me"));
  ASSERT_EQ(::symlink("../outside", (dir + "/victim/state/escape").c_str()), 0);
  ASSERT_EQ(::symlink((dir + "/outside").c_str(), (dir + "/victim/escape_abs").c_str()), 0);
  ASSERT_EQ(::mkdir((dir + "/victim/locked").c_str(), 0755), 0);
  FE_ASSERT_OK(test::WriteFile(dir + "/victim/locked/file", "x"));
  ASSERT_EQ(::chmod((dir + "/victim/locked").c_str(), 0500), 0);

  UniqueFd parent(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  FE_ASSERT_OK(RemoveTree(parent.get(), "victim"));
  EXPECT_FALSE(Exists(dir + "/victim"));
  Result<std::string> precious = test::ReadFile(dir + "/outside/precious");
  ASSERT_TRUE(precious.ok());
  EXPECT_EQ(*precious, "keep me");
}

}  // namespace
}  // namespace fe::storage::tree
