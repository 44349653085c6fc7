// SHA-256 (OpenSSL's libcrypto): the checksums of replicated chunks and the content hash of a
// template's file list (snapshot/guest_files.h).
#pragma once

#include <string>
#include <string_view>

namespace fe {

// Incremental: Update any number of times, then HexDigest once.
class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;

  void Update(std::string_view data);
  // 64 lower-case hex digits.
  std::string HexDigest();

 private:
  void* context_;  // EVP_MD_CTX
};

// The hex SHA-256 of `data`.
std::string Sha256Hex(std::string_view data);

}  // namespace fe
