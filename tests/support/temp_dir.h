// A private directory under /tmp for one test process, removed (without following symlinks) on
// destruction.
#pragma once

#include <string>
#include <string_view>

#include "base/status.h"

namespace fe::test {

// Every test temp dir is /tmp/<kTempPrefix><pid>-XXXXXX, so a later run can recognise (and clean up
// after) a test process that was killed.
inline constexpr std::string_view kTempPrefix = "forkengine-test-";

class TempDir {
 public:
  static Result<TempDir> Create();

  TempDir(TempDir&& other) noexcept;
  TempDir& operator=(TempDir&& other) noexcept;
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  ~TempDir();

  const std::string& path() const { return path_; }
  // path() + "/" + name
  std::string Sub(std::string_view name) const;

 private:
  TempDir() = default;
  void Remove();
  std::string path_;
};

}  // namespace fe::test
