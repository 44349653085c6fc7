// Whole-file reads and atomic replacement for the small JSON files of a guest directory (manifest,
// hypervisor configs). A file is never rewritten in place: readers see the old content or the new,
// and a crash leaves one of the two.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <string>
#include <string_view>

#include "base/status.h"

namespace fe {

// The content of the regular file `path` (symlinks are not followed). Fails with InvalidArgument when
// it is not a regular file or is larger than `limit` bytes; errors name `path` and errno's text.
// Whether `path` is a regular file (not following a final symlink); false when it does not exist.
Result<bool> IsRegularFile(const std::string& path);

Result<std::string> ReadSmallFile(const std::string& path, size_t limit = size_t{64} << 20);

// Replaces `path` with `content`: writes a temporary file beside it ("<name>.tmp-XXXXXX"), fsyncs it,
// renames it over `path` and fsyncs the directory. An existing file's mode and owner are kept; a new
// file gets `mode`. On failure `path` is untouched and the temporary file is removed. Within a
// DeferredSync scope (base/deferred_sync.h) the fsyncs are left to the scope's Sync().
Status ReplaceFileAtomically(const std::string& path, std::string_view content, mode_t mode = 0644);

// ReplaceFileAtomically that syncs whatever scope is current: for files that must be durable on
// their own.
Status ReplaceFileDurably(const std::string& path, std::string_view content, mode_t mode = 0644);

}  // namespace fe
