// An initramfs image: a "newc" cpio archive, written directly (no cpio binary, no staging tree).
// Entries keep the order they were added in; parent directories are added automatically, before
// their first child, as the kernel's unpacker needs.
#pragma once

#include <sys/types.h>

#include <set>
#include <string>
#include <vector>

#include "base/status.h"

namespace fe::test {

class InitramfsBuilder {
 public:
  // Guest paths are absolute ("/bin/busybox"); they are stored without the leading '/'.
  void AddDirectory(const std::string& guest_path, mode_t mode = 0755);
  // The content of host file `host_path` (read at Write time, symlinks followed).
  void AddFile(const std::string& guest_path, const std::string& host_path, mode_t mode);
  void AddContent(const std::string& guest_path, std::string content, mode_t mode);
  void AddSymlink(const std::string& guest_path, const std::string& target);
  bool Contains(const std::string& guest_path) const;

  // Writes the uncompressed archive (the kernel takes it as it is) to `path`.
  Status Write(const std::string& path) const;

 private:
  struct Entry {
    std::string name;       // without leading '/'
    mode_t mode = 0;        // including the file type bits
    std::string host_path;  // regular files read from the host
    std::string content;    // inline content, or a symlink's target
  };
  void AddParents(const std::string& name);
  void Add(Entry entry);

  std::vector<Entry> entries_;
  std::set<std::string> names_;
};

}  // namespace fe::test
