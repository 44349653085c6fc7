#include "tests/support/sample_tree.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cerrno>

#include "tests/support/file_util.h"

namespace fe::test {
namespace {

Status MakeDir(const std::string& path, mode_t mode) {
  if (::mkdir(path.c_str(), mode) != 0) return Status::FromErrno(errno, "mkdir", path);
  if (::chmod(path.c_str(), mode) != 0) return Status::FromErrno(errno, "chmod", path);  // umask
  return Status::Ok();
}

Status MakeSymlink(const std::string& target, const std::string& path) {
  if (::symlink(target.c_str(), path.c_str()) != 0) return Status::FromErrno(errno, "symlink", path);
  return Status::Ok();
}

}  // namespace

Status SetTimes(const std::string& path, int64_t atime_ns, int64_t mtime_ns) {
  const struct timespec times[2] = {{atime_ns / 1'000'000'000, atime_ns % 1'000'000'000},
                                    {mtime_ns / 1'000'000'000, mtime_ns % 1'000'000'000}};
  if (::utimensat(AT_FDCWD, path.c_str(), times, AT_SYMLINK_NOFOLLOW) != 0) {
    return Status::FromErrno(errno, "utimensat", path);
  }
  return Status::Ok();
}

Status SetXattr(const std::string& path, const std::string& name, const std::string& value) {
  if (::lsetxattr(path.c_str(), name.c_str(), value.data(), value.size(), 0) != 0) {
    return Status::FromErrno(errno, "lsetxattr " + name, path);
  }
  return Status::Ok();
}

Result<SampleTree> MakeSampleTree(const std::string& root, uint64_t seed) {
  SampleTree tree;
  FE_RETURN_IF_ERROR(MakeDir(root, 0755));
  FE_RETURN_IF_ERROR(MakeDir(root + "/state", 0750));
  FE_RETURN_IF_ERROR(MakeDir(root + "/state/nested", 0755));
  FE_RETURN_IF_ERROR(MakeDir(root + "/state/nested/deeper", 0700));
  tree.directories = 4;

  // A sparse disk image: 64 MiB apparent, 4 MiB of data.
  FE_RETURN_IF_ERROR(MakeSparseFile(root + "/disk.img", 64 * kMiB, {{0, 2 * kMiB}, {32 * kMiB, 2 * kMiB}}, seed));
  // A memory file above the cloner's large-file threshold (8 MiB).
  FE_RETURN_IF_ERROR(WritePatternFile(root + "/memory.bin", 9 * kMiB, seed + 1));
  const std::string config = "{\"vcpus\": 2, \"memory_mib\": 512}\n";
  FE_RETURN_IF_ERROR(WriteFile(root + "/config.json", config));
  FE_RETURN_IF_ERROR(SetXattr(root + "/config.json", "user.forkengine.note", "sample"));
  FE_RETURN_IF_ERROR(WriteFile(root + "/empty", ""));
  FE_RETURN_IF_ERROR(WriteFile(root + "/state/a.txt", std::string(100, 'a'), 0640));
  FE_RETURN_IF_ERROR(WriteFile(root + "/state/nested/deeper/leaf.txt", "leaf\n", 0600));
  FE_RETURN_IF_ERROR(WritePatternFile(root + "/hard1", 300 * kKiB, seed + 2));
  if (::link((root + "/hard1").c_str(), (root + "/state/hard2").c_str()) != 0) {
    return Status::FromErrno(errno, "link", root + "/state/hard2");
  }
  tree.files = 7;
  tree.hardlinks = 1;
  tree.logical_bytes = 64 * kMiB + 9 * kMiB + config.size() + 100 + 5 + 300 * kKiB;
  tree.data_bytes = 4 * kMiB + 9 * kMiB + config.size() + 100 + 5 + 300 * kKiB;

  FE_RETURN_IF_ERROR(MakeSymlink("state/a.txt", root + "/rel_link"));
  FE_RETURN_IF_ERROR(MakeSymlink("does-not-exist", root + "/dangling"));
  FE_RETURN_IF_ERROR(MakeSymlink("/etc", root + "/etc_link"));
  tree.symlinks = 3;

  // Fixed times (directories last: creating entries changes them).
  const int64_t base = 1'600'000'000'000'000'000 + static_cast<int64_t>(seed);
  for (const char* file :
       {"/disk.img", "/memory.bin", "/config.json", "/empty", "/state/a.txt", "/hard1", "/rel_link"}) {
    FE_RETURN_IF_ERROR(SetTimes(root + file, base + 111, base + 222));
  }
  for (const char* dir : {"/state/nested/deeper", "/state/nested", "/state", ""}) {
    FE_RETURN_IF_ERROR(SetTimes(root + dir, base + 333, base + 444));
  }
  return tree;
}

}  // namespace fe::test
