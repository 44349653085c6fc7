#include "storage/backend.h"

namespace fe::storage {

Status ValidateVolumeName(std::string_view volume) {
  auto valid_char = [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
           c == '-';
  };
  bool ok = !volume.empty() && volume.size() <= 128 && valid_char(volume[0]) && volume[0] != '.' && volume[0] != '_' &&
            volume[0] != '-';
  for (char c : volume) ok = ok && valid_char(c);
  if (ok) return Status::Ok();
  return Status::InvalidArgument("invalid volume name '" + std::string(volume) +
                                 "': expected [A-Za-z0-9][A-Za-z0-9._-]*, at most 128 characters");
}

}  // namespace fe::storage
