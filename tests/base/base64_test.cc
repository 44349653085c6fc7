#include "base/base64.h"

#include <gtest/gtest.h>

namespace fe {
namespace {

TEST(Base64Test, EncodesTheRfc4648Vectors) {
  const std::pair<const char*, const char*> vectors[] = {{"", ""},
                                                         {"f", "Zg=="},
                                                         {"fo", "Zm8="},
                                                         {"foo", "Zm9v"},
                                                         {"foob", "Zm9vYg=="},
                                                         {"fooba", "Zm9vYmE="},
                                                         {"foobar", "Zm9vYmFy"}};
  for (const auto& [plain, encoded] : vectors) {
    EXPECT_EQ(Base64Encode(plain), encoded);
    Result<std::string> decoded = Base64Decode(encoded, "vector");
    ASSERT_TRUE(decoded.ok()) << decoded.status().ToString();
    EXPECT_EQ(*decoded, plain);
  }
}

TEST(Base64Test, EveryByteValueRoundTrips) {
  std::string bytes;
  for (int i = 0; i < 256; ++i) bytes += static_cast<char>(i);
  Result<std::string> decoded = Base64Decode(Base64Encode(bytes), "bytes");
  ASSERT_TRUE(decoded.ok());
  EXPECT_EQ(*decoded, bytes);
}

TEST(Base64Test, MalformedTextIsRefusedNamingWhatItWas) {
  for (const char* bad : {"Zg=", "Z===", "Zm9v!A==", "Zg==Zm8=", "Zm=v"}) {
    Result<std::string> decoded = Base64Decode(bad, "etcd key");
    EXPECT_EQ(decoded.status().code(), ErrorCode::kInvalidArgument) << bad;
    EXPECT_NE(decoded.status().message().find("etcd key"), std::string::npos) << decoded.status().ToString();
  }
}

}  // namespace
}  // namespace fe
