// The write-ahead journal that makes handing out a pool member cheap and still durable.
//
// Releasing a member (Engine::ReleaseFromPool: rename it, clear its pool) used to replace its
// instance.json atomically: a temporary file, its fsync, a rename, the directory's fsync — two log
// forces per acquire. Instead the release is appended here as one 256-byte record, made durable with
// one fdatasync of a preallocated file (no metadata changes, so no log force), and concurrent
// appends share that fdatasync (group commit). The instance's metadata is rewritten later, many at a
// time (Engine's checkpointer); once those rewrites are durable the records are marked applied and
// the checkpoint in the header moves past them, which frees their slots. At Open, the records past
// the checkpoint are the releases whose metadata may not be on disk: recovery re-applies them.
//
// File: a 4 KiB header block, then `capacity` slots of 256 bytes used as a ring (slot = seq mod
// capacity). Header: magic, version, checkpoint seq, slot count, CRC-32. Record: magic, seq,
// payload length, CRC-32 of seq + length + payload, payload = JSON {"id","name"} and, when the acquire
// set them, "expires_at" and "idle_standby_s". A record counts
// when its CRC matches and its seq is past the checkpoint; records past the checkpoint are
// contiguous (batches are written in order, each after the previous one's fdatasync), so replay
// stops at the first gap: a torn final batch was never acknowledged.
//
// Threads: every method may be called concurrently.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "base/status.h"
#include "base/unique_fd.h"

namespace fe::engine {

struct ReleaseRecord {
  uint64_t seq = 0;  // assigned by Append
  std::string id;    // the instance released from its pool
  std::string name;  // its name from now on
  // The policy the acquire set (issue #23): its deadline (RFC 3339, empty: none) and idle standby.
  std::string expires_at;
  int64_t idle_standby_s = 0;
};

class ReleaseJournal {
 public:
  static constexpr uint32_t kDefaultCapacity = 4096;

  // Opens `path`, creating it (preallocated and zeroed, durably) when missing. InvalidArgument naming
  // the file when its header is not a journal's.
  static Result<std::unique_ptr<ReleaseJournal>> Open(const std::string& path, uint32_t capacity = kDefaultCapacity);

  const std::string& path() const { return path_; }
  // The records past the checkpoint found at Open, in seq order: releases to re-apply. They stay
  // unapplied until MarkApplied.
  const std::vector<ReleaseRecord>& pending_at_open() const { return pending_at_open_; }

  // Appends the release durably and returns its seq once an fdatasync covered it. kNoSpace when every
  // slot holds an unapplied record; InvalidArgument when the record does not fit a slot; kIo (and
  // every later append fails too) when a write or fdatasync failed. The caller then makes the
  // release durable some other way.
  Result<uint64_t> Append(const ReleaseRecord& record);

  // The release `seq` is durable in the instance's metadata (or moot): its slot may be reused once
  // every earlier one is applied too.
  void MarkApplied(uint64_t seq);

  // Moves the header's checkpoint past every record applied so far (all earlier seqs applied too)
  // and makes it durable. Ok and no write when it would not move.
  Status Checkpoint();

  uint64_t checkpoint() const;
  size_t unapplied() const;
  uint32_t capacity() const { return capacity_; }  // slots (fixed once opened)

 private:
  struct Batch {
    uint64_t first_seq = 0;
    std::vector<char> bytes;  // consecutive slots
  };

  ReleaseJournal(std::string path, UniqueFd fd, uint32_t capacity)
      : path_(std::move(path)), fd_(std::move(fd)), capacity_(capacity) {}
  Status Load();
  Status WriteBatch(const Batch& batch);

  const std::string path_;
  const UniqueFd fd_;
  uint32_t capacity_;  // the file's, once loaded
  std::vector<ReleaseRecord> pending_at_open_;

  mutable std::mutex mutex_;
  std::condition_variable durable_changed_;
  uint64_t next_seq_ = 1;         // GUARDED_BY(mutex_)
  uint64_t durable_seq_ = 0;      // every seq <= this is on disk; GUARDED_BY(mutex_)
  uint64_t checkpoint_ = 0;       // GUARDED_BY(mutex_)
  std::set<uint64_t> unapplied_;  // assigned seqs not yet applied; GUARDED_BY(mutex_)
  std::vector<char> queued_;      // encoded slots waiting for the next batch; GUARDED_BY(mutex_)
  uint64_t queued_first_seq_ = 0;
  bool writing_ = false;     // a thread is writing a batch; GUARDED_BY(mutex_)
  Status broken_;            // the first failed write; GUARDED_BY(mutex_)
  std::mutex header_mutex_;  // serialises Checkpoint()
};

}  // namespace fe::engine
