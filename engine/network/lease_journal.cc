#include "engine/network/lease_journal.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>

#include "base/atomic_file.h"
#include "base/deferred_sync.h"

namespace fe::engine::network {
namespace {

using Json = nlohmann::ordered_json;

std::string HeaderLine(uint64_t generation) { return Json{{"journal", generation}}.dump() + "\n"; }

Status WriteAt(int fd, std::string_view bytes, uint64_t offset, const std::string& path) {
  for (size_t done = 0; done < bytes.size();) {
    ssize_t written = ::pwrite(fd, bytes.data() + done, bytes.size() - done, static_cast<off_t>(offset + done));
    if (written < 0 && errno == EINTR) continue;
    if (written <= 0) return Status::FromErrno(written < 0 ? errno : EIO, "write", path);
    done += static_cast<size_t>(written);
  }
  return Status::Ok();
}

Result<UniqueFd> OpenJournal(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600));
  if (!fd) return Status::FromErrno(errno, "open", path);
  return fd;
}

// The next whole line of `text` from `offset` as a JSON object, or nullopt (torn or not JSON).
std::optional<Json> WholeLine(const std::string& text, size_t offset, size_t& next) {
  const size_t end = text.find('\n', offset);
  if (end == std::string::npos) return std::nullopt;
  Json line = Json::parse(std::string_view(text).substr(offset, end - offset), nullptr, /*allow_exceptions=*/false);
  if (line.is_discarded() || !line.is_object()) return std::nullopt;
  next = end + 1;
  return line;
}

}  // namespace

Result<LeaseJournal> LeaseJournal::Open(const std::string& path, Contents& contents) {
  contents = Contents();
  const size_t slash = path.rfind('/');
  std::string dir = slash == std::string::npos ? "." : path.substr(0, slash == 0 ? 1 : slash);
  FE_ASSIGN_OR_RETURN(UniqueFd fd, OpenJournal(path));
  FE_ASSIGN_OR_RETURN(std::string text, ReadSmallFileFd(fd.get(), path));
  size_t offset = 0;
  FE_ASSIGN_OR_RETURN(contents, Parse(text, path, offset));
  if (offset == 0) {
    // Missing, empty or torn in its header: an empty journal of generation 0.
    FE_RETURN_IF_ERROR(WriteAt(fd.get(), HeaderLine(0), 0, path));
    offset = HeaderLine(0).size();
  }
  if (offset < text.size()) {
    if (::ftruncate(fd.get(), static_cast<off_t>(offset)) != 0) return Status::FromErrno(errno, "truncate", path);
    if (::fdatasync(fd.get()) != 0) return Status::FromErrno(errno, "fdatasync", path);
  }
  return LeaseJournal(path, std::move(dir), std::move(fd), offset, contents.records.size());
}

Result<LeaseJournal::Contents> LeaseJournal::Parse(const std::string& text, const std::string& path,
                                                   size_t& whole_bytes) {
  Contents contents;
  size_t offset = 0, next = 0;
  if (std::optional<Json> header = WholeLine(text, 0, next)) {
    auto generation = header->find("journal");
    if (generation == header->end() || !generation->is_number_unsigned()) {
      return Status::InvalidArgument(path + ": line 1: expected {\"journal\": <generation>}");
    }
    contents.generation = generation->get<uint64_t>();
    offset = next;
    while (std::optional<Json> record = WholeLine(text, offset, next)) {
      contents.records.push_back(std::move(*record));
      offset = next;
    }
  }
  whole_bytes = offset;
  return contents;
}

Status LeaseJournal::Append(const Json& record) {
  const std::string line = record.dump() + "\n";
  Status written = WriteAt(fd_.get(), line, size_, path_);
  if (written.ok()) {
    if (DeferredSync* deferred = DeferredSync::Current()) {
      deferred->Note(dir_);
    } else if (::fdatasync(fd_.get()) != 0) {
      written = Status::FromErrno(errno, "fdatasync", path_);
    }
  }
  if (!written.ok()) {
    // The caller forgets the change: so must the file, or a later line could contradict it.
    if (::ftruncate(fd_.get(), static_cast<off_t>(size_)) != 0) {
      return written.Annotate("(and cutting it back failed: " + Status::FromErrno(errno, "truncate", path_).ToString() +
                              ")");
    }
    return written;
  }
  size_ += line.size();
  ++records_;
  return Status::Ok();
}

Status LeaseJournal::Restart(uint64_t generation) {
  // In place, so a full filesystem (no room for a new inode) does not stop it: a crash between the
  // steps leaves an empty or torn journal, which counts as generation 0 and is ignored beside the
  // network.json that already recorded `generation`.
  const std::string header = HeaderLine(generation);
  if (::ftruncate(fd_.get(), 0) != 0) return Status::FromErrno(errno, "truncate", path_);
  size_ = 0;
  records_ = 0;
  FE_RETURN_IF_ERROR(WriteAt(fd_.get(), header, 0, path_));
  if (::fdatasync(fd_.get()) != 0) return Status::FromErrno(errno, "fdatasync", path_);
  size_ = header.size();
  return Status::Ok();
}

}  // namespace fe::engine::network
