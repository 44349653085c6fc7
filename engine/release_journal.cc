#include "engine/release_journal.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <cerrno>
#include <cstring>
#include <map>

#include <nlohmann/json.hpp>

#include "base/atomic_file.h"
#include "base/fs_util.h"

namespace fe::engine {
namespace {

constexpr size_t kHeaderBlock = 4096;
constexpr size_t kSlot = 256;
constexpr char kHeaderMagic[8] = {'F', 'E', 'R', 'E', 'L', 'J', 'N', '1'};
constexpr uint32_t kRecordMagic = 0x4c455246;  // "FREL"
// Record: magic u32 | payload length u32 | seq u64 | crc u32 | payload
constexpr size_t kRecordHeader = 20;
constexpr size_t kMaxPayload = kSlot - kRecordHeader;

template <typename T>
void Put(char* at, T value) {
  std::memcpy(at, &value, sizeof value);
}

template <typename T>
T Get(const char* at) {
  T value;
  std::memcpy(&value, at, sizeof value);
  return value;
}

uint32_t Crc(const char* data, size_t size, uint32_t crc = 0) {
  return static_cast<uint32_t>(::crc32(crc, reinterpret_cast<const Bytef*>(data), static_cast<uInt>(size)));
}

uint32_t RecordCrc(const char* slot, uint32_t length) { return Crc(slot + kRecordHeader, length, Crc(slot + 4, 12)); }

std::vector<char> EncodeHeader(uint64_t checkpoint, uint32_t capacity) {
  std::vector<char> block(kHeaderBlock, 0);
  std::memcpy(block.data(), kHeaderMagic, sizeof kHeaderMagic);
  Put<uint64_t>(block.data() + 8, checkpoint);
  Put<uint32_t>(block.data() + 16, capacity);
  Put<uint32_t>(block.data() + 20, static_cast<uint32_t>(kSlot));
  Put<uint32_t>(block.data() + 24, Crc(block.data(), 24));
  return block;
}

Status SyncData(int fd, const std::string& path) {
  if (::fdatasync(fd) != 0) return Status::FromErrno(errno, "fdatasync", path);
  return Status::Ok();
}

// A new journal: every slot written (zeros) and synced once, so an append overwrites allocated,
// initialised blocks and its fdatasync needs no metadata update.
Result<UniqueFd> CreateJournal(const std::string& path, uint32_t capacity) {
  std::vector<char> file = EncodeHeader(0, capacity);
  file.resize(kHeaderBlock + size_t{capacity} * kSlot, 0);
  FE_RETURN_IF_ERROR(ReplaceFileDurably(path, std::string_view(file.data(), file.size()), 0600));
  UniqueFd fd(::open(path.c_str(), O_RDWR | O_CLOEXEC | O_NOFOLLOW));
  if (fd.get() < 0) return Status::FromErrno(errno, "open", path);
  return fd;
}

}  // namespace

Result<std::unique_ptr<ReleaseJournal>> ReleaseJournal::Open(const std::string& path, uint32_t capacity) {
  if (capacity == 0) return Status::InvalidArgument("release journal " + path + ": capacity 0");
  UniqueFd fd(::open(path.c_str(), O_RDWR | O_CLOEXEC | O_NOFOLLOW));
  if (fd.get() < 0 && errno != ENOENT) return Status::FromErrno(errno, "open", path);
  if (fd.get() < 0) {
    Result<UniqueFd> created = CreateJournal(path, capacity);
    if (!created.ok()) return created.status().Annotate("creating the release journal");
    fd = std::move(*created);
  }
  std::unique_ptr<ReleaseJournal> journal(new ReleaseJournal(path, std::move(fd), capacity));
  FE_RETURN_IF_ERROR(journal->Load());
  return journal;
}

Status ReleaseJournal::Load() {
  std::vector<char> header(kHeaderBlock);
  FE_RETURN_IF_ERROR(ReadAllAt(fd_.get(), header.data(), header.size(), 0, path_));
  if (std::memcmp(header.data(), kHeaderMagic, sizeof kHeaderMagic) != 0 ||
      Get<uint32_t>(header.data() + 24) != Crc(header.data(), 24) || Get<uint32_t>(header.data() + 20) != kSlot ||
      Get<uint32_t>(header.data() + 16) == 0) {
    return Status::InvalidArgument(path_ + ": not a forkengine release journal (bad header)");
  }
  checkpoint_ = Get<uint64_t>(header.data() + 8);
  capacity_ = Get<uint32_t>(header.data() + 16);

  std::vector<char> slots(size_t{capacity_} * kSlot);
  FE_RETURN_IF_ERROR(ReadAllAt(fd_.get(), slots.data(), slots.size(), kHeaderBlock, path_));
  std::map<uint64_t, size_t> past_checkpoint;  // seq -> slot index
  for (size_t index = 0; index < capacity_; ++index) {
    const char* slot = slots.data() + index * kSlot;
    const uint32_t length = Get<uint32_t>(slot + 4);
    const uint64_t seq = Get<uint64_t>(slot + 8);
    if (Get<uint32_t>(slot) != kRecordMagic || length > kMaxPayload || seq <= checkpoint_) continue;
    if (Get<uint32_t>(slot + 16) != RecordCrc(slot, length)) continue;
    past_checkpoint.emplace(seq, index);
  }
  uint64_t last = checkpoint_;
  bool stale = false;  // records of a torn batch beyond the first gap: never acknowledged
  for (const auto& [seq, index] : past_checkpoint) {
    if (seq != last + 1) {
      stale = true;
      FE_RETURN_IF_ERROR(WriteAllAt(fd_.get(), std::vector<char>(kSlot, 0).data(), kSlot,
                                    static_cast<off_t>(kHeaderBlock + index * kSlot), path_));
      continue;
    }
    const char* slot = slots.data() + index * kSlot;
    nlohmann::json payload = nlohmann::json::parse(slot + kRecordHeader, slot + kRecordHeader + Get<uint32_t>(slot + 4),
                                                   nullptr, /*allow_exceptions=*/false);
    if (!payload.is_object() || !payload["id"].is_string() || !payload["name"].is_string() ||
        !payload.value("expires_at", nlohmann::json("")).is_string() ||
        !payload.value("idle_standby_s", nlohmann::json(0)).is_number_integer()) {
      return Status::InvalidArgument(path_ + ": record " + std::to_string(seq) + " is not a release");
    }
    pending_at_open_.push_back({seq, payload["id"].get<std::string>(), payload["name"].get<std::string>(),
                                payload.value("expires_at", std::string()),
                                payload.value("idle_standby_s", int64_t{0})});
    unapplied_.insert(seq);
    last = seq;
  }
  // Stale records must go before a new record could make them look contiguous again.
  if (stale) FE_RETURN_IF_ERROR(SyncData(fd_.get(), path_));
  next_seq_ = last + 1;
  durable_seq_ = last;
  return Status::Ok();
}

Result<uint64_t> ReleaseJournal::Append(const ReleaseRecord& record) {
  nlohmann::json fields{{"id", record.id}, {"name", record.name}};
  if (!record.expires_at.empty()) fields["expires_at"] = record.expires_at;
  if (record.idle_standby_s != 0) fields["idle_standby_s"] = record.idle_standby_s;
  const std::string payload = fields.dump();
  if (payload.size() > kMaxPayload) {
    return Status::InvalidArgument("release of '" + record.id + "' does not fit a journal record");
  }
  std::unique_lock lock(mutex_);
  if (!broken_.ok()) return broken_;
  if (next_seq_ - 1 - checkpoint_ >= capacity_) {
    return Status::NoSpace("release journal " + path_ + " is full: " + std::to_string(capacity_) +
                           " releases wait for their metadata checkpoint");
  }
  const uint64_t seq = next_seq_++;
  unapplied_.insert(seq);
  if (queued_.empty()) queued_first_seq_ = seq;
  const size_t at = queued_.size();
  queued_.resize(at + kSlot, 0);
  char* slot = queued_.data() + at;
  Put<uint32_t>(slot, kRecordMagic);
  Put<uint32_t>(slot + 4, static_cast<uint32_t>(payload.size()));
  Put<uint64_t>(slot + 8, seq);
  std::memcpy(slot + kRecordHeader, payload.data(), payload.size());
  Put<uint32_t>(slot + 16, RecordCrc(slot, static_cast<uint32_t>(payload.size())));

  // Group commit: whoever finds no batch in flight writes everything queued so far; the others wait
  // for a batch that covers their record.
  while (durable_seq_ < seq && broken_.ok()) {
    if (writing_) {
      durable_changed_.wait(lock);
      continue;
    }
    writing_ = true;
    Batch batch{queued_first_seq_, std::move(queued_)};
    queued_.clear();
    lock.unlock();
    Status written = WriteBatch(batch);
    lock.lock();
    writing_ = false;
    if (written.ok()) {
      durable_seq_ = batch.first_seq + batch.bytes.size() / kSlot - 1;
    } else {
      broken_ = written.Annotate("release journal");
    }
    durable_changed_.notify_all();
  }
  if (durable_seq_ < seq) {
    unapplied_.erase(seq);
    return broken_;
  }
  return seq;
}

Status ReleaseJournal::WriteBatch(const Batch& batch) {
  const size_t count = batch.bytes.size() / kSlot;
  const size_t first_slot = batch.first_seq % capacity_;
  const size_t before_wrap = std::min(count, capacity_ - first_slot);
  FE_RETURN_IF_ERROR(WriteAllAt(fd_.get(), batch.bytes.data(), before_wrap * kSlot,
                                static_cast<off_t>(kHeaderBlock + first_slot * kSlot), path_));
  if (before_wrap < count) {
    FE_RETURN_IF_ERROR(WriteAllAt(fd_.get(), batch.bytes.data() + before_wrap * kSlot, (count - before_wrap) * kSlot,
                                  static_cast<off_t>(kHeaderBlock), path_));
  }
  return SyncData(fd_.get(), path_);
}

void ReleaseJournal::MarkApplied(uint64_t seq) {
  std::lock_guard lock(mutex_);
  unapplied_.erase(seq);
}

Status ReleaseJournal::Checkpoint() {
  std::lock_guard serial(header_mutex_);
  uint64_t target = 0;
  {
    std::lock_guard lock(mutex_);
    target = unapplied_.empty() ? next_seq_ - 1 : *unapplied_.begin() - 1;
    if (target <= checkpoint_) return Status::Ok();
  }
  std::vector<char> header = EncodeHeader(target, capacity_);
  FE_RETURN_IF_ERROR(WriteAllAt(fd_.get(), header.data(), header.size(), 0, path_));
  FE_RETURN_IF_ERROR(SyncData(fd_.get(), path_));
  std::lock_guard lock(mutex_);
  checkpoint_ = target;
  return Status::Ok();
}

uint64_t ReleaseJournal::checkpoint() const {
  std::lock_guard lock(mutex_);
  return checkpoint_;
}

size_t ReleaseJournal::unapplied() const {
  std::lock_guard lock(mutex_);
  return unapplied_.size();
}

}  // namespace fe::engine
