#include "tests/guest/initramfs.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>

#include "base/unique_fd.h"

namespace fe::test {
namespace {

std::string Strip(const std::string& guest_path) {
  size_t start = guest_path.find_first_not_of('/');
  return start == std::string::npos ? "" : guest_path.substr(start);
}

Result<std::string> ReadHostFile(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return Status::FromErrno(errno, "open", path);
  std::string data;
  char buffer[1 << 16];
  for (;;) {
    ssize_t n = ::read(fd.get(), buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Status::FromErrno(errno, "read", path);
    if (n == 0) return data;
    data.append(buffer, static_cast<size_t>(n));
  }
}

void Pad4(std::string& out) { out.append((4 - out.size() % 4) % 4, '\0'); }

// One newc record: a 110-byte header of hex fields, the NUL-terminated name and the data, each
// padded to 4 bytes.
void AppendRecord(std::string& out, uint32_t inode, mode_t mode, const std::string& name, const std::string& data) {
  char header[111];
  std::snprintf(header, sizeof header, "070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X", inode,
                static_cast<unsigned>(mode), 0u, 0u, S_ISDIR(mode) ? 2u : 1u, 0u, static_cast<unsigned>(data.size()),
                0u, 0u, 0u, 0u, static_cast<unsigned>(name.size() + 1), 0u);
  out.append(header, 110);
  out.append(name).push_back('\0');
  Pad4(out);
  out.append(data);
  Pad4(out);
}

}  // namespace

void InitramfsBuilder::Add(Entry entry) {
  if (entry.name.empty() || names_.count(entry.name) != 0) return;
  AddParents(entry.name);
  names_.insert(entry.name);
  entries_.push_back(std::move(entry));
}

void InitramfsBuilder::AddParents(const std::string& name) {
  size_t slash = name.rfind('/');
  if (slash == std::string::npos) return;
  const std::string parent = name.substr(0, slash);
  if (names_.count(parent) == 0) Add(Entry{parent, S_IFDIR | 0755, "", ""});
}

void InitramfsBuilder::AddDirectory(const std::string& guest_path, mode_t mode) {
  Add(Entry{Strip(guest_path), S_IFDIR | (mode & 07777), "", ""});
}

void InitramfsBuilder::AddFile(const std::string& guest_path, const std::string& host_path, mode_t mode) {
  Add(Entry{Strip(guest_path), S_IFREG | (mode & 07777), host_path, ""});
}

void InitramfsBuilder::AddContent(const std::string& guest_path, std::string content, mode_t mode) {
  Add(Entry{Strip(guest_path), S_IFREG | (mode & 07777), "", std::move(content)});
}

void InitramfsBuilder::AddSymlink(const std::string& guest_path, const std::string& target) {
  Add(Entry{Strip(guest_path), S_IFLNK | 0777, "", target});
}

bool InitramfsBuilder::Contains(const std::string& guest_path) const { return names_.count(Strip(guest_path)) != 0; }

Status InitramfsBuilder::Write(const std::string& path) const {
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
  if (!fd) return Status::FromErrno(errno, "create initramfs", path);
  uint32_t inode = 1;
  auto flush = [&](std::string& out) -> Status {
    size_t done = 0;
    while (done < out.size()) {
      ssize_t n = ::write(fd.get(), out.data() + done, out.size() - done);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return Status::FromErrno(errno, "write initramfs", path);
      done += static_cast<size_t>(n);
    }
    out.clear();
    return Status::Ok();
  };
  std::string out;
  for (const Entry& entry : entries_) {
    std::string data = entry.content;
    if (!entry.host_path.empty()) {
      Result<std::string> file = ReadHostFile(entry.host_path);
      if (!file.ok()) return file.status().Annotate("initramfs entry /" + entry.name);
      data = std::move(*file);
    }
    AppendRecord(out, inode++, entry.mode, entry.name, data);
    FE_RETURN_IF_ERROR(flush(out));
  }
  AppendRecord(out, 0, 0, "TRAILER!!!", "");
  return flush(out);
}

}  // namespace fe::test
