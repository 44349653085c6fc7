// Whole-file reads and atomic replacement for small files (instance metadata, the manifest,
// hypervisor configs). A file is never rewritten in place: readers see the old content or the new,
// and a crash leaves one of the two, plus at most a temporary file "<name>.tmp-XXXXXX" beside it
// (IsTemporaryName), which the owner of the directory removes at start.
//
// Paths here are trusted (the engine's own state). Files in a directory whose content a client
// controls (a guest directory) go through base/confined_dir.h, which uses the fd-relative forms.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/status.h"
#include "base/unique_fd.h"

namespace fe {

inline constexpr size_t kSmallFileLimit = size_t{64} << 20;

// Whether `path` is a regular file (not following a final symlink); false when it does not exist.
Result<bool> IsRegularFile(const std::string& path);

// The content of the regular file `path` (a final symlink is not followed). Fails with
// InvalidArgument when it is not a regular file or is larger than `limit` bytes; errors name `path`
// and errno's text.
Result<std::string> ReadSmallFile(const std::string& path, size_t limit = kSmallFileLimit);
// The same for an open file; `display` names it in errors.
Result<std::string> ReadSmallFileFd(int fd, std::string_view display, size_t limit = kSmallFileLimit);

// Replaces `path` with `content`: writes a temporary file beside it ("<name>.tmp-XXXXXX"), fsyncs it,
// renames it over `path` and fsyncs the directory. An existing file's mode and owner are kept; a new
// file gets `mode`. On failure `path` is untouched and the temporary file is removed. Within a
// DeferredSync scope (base/deferred_sync.h) the fsyncs are left to the scope's Sync().
Status ReplaceFileAtomically(const std::string& path, std::string_view content, mode_t mode = 0644);

// ReplaceFileAtomically that syncs whatever scope is current: for files that must be durable on
// their own.
Status ReplaceFileDurably(const std::string& path, std::string_view content, mode_t mode = 0644);

// ReplaceFileAtomically of the entry `name` (one component) of the open directory `dir_fd`, which
// `dir_display` names in errors. Nothing is resolved by path: the temporary file and the rename are
// relative to `dir_fd`, and an existing `name` that is not a regular file (a symlink, say) is refused.
Status ReplaceFileAt(int dir_fd, const std::string& dir_display, const std::string& name, std::string_view content,
                     mode_t mode = 0644);

// A new temporary file "<name>.tmp-XXXXXX" (mode 0600) in the open directory `dir_fd`, created
// exclusively, never through a symlink; returns it open for writing, and its name. For writers that
// fill a file themselves and rename it over `name` (which the temporary-file sweep removes after a
// crash: IsTemporaryName).
Result<std::pair<UniqueFd, std::string>> CreateTemporaryFileAt(int dir_fd, const std::string& dir_display,
                                                               const std::string& name);

// Unlinks `path` and fsyncs its directory, so the removal survives a crash. Ok when it is absent.
Status RemoveFileDurably(const std::string& path);

// Whether `name` is a temporary file of these writers ("<something>.tmp-" and 6 characters).
bool IsTemporaryName(std::string_view name);

// Removes the temporary files a cut-short replacement of `path` left beside it ("<name>.tmp-XXXXXX",
// regular files only) and returns their names. For an owner that holds `path` under a lock in a
// directory it shares with other writers, so it may sweep only its own file's temporaries.
Result<std::vector<std::string>> RemoveTemporaryFilesOf(const std::string& path);

}  // namespace fe
