// Base64 (RFC 4648, standard alphabet, padded): how etcd's JSON gateway carries keys and values.
#pragma once

#include <string>
#include <string_view>

#include "base/status.h"

namespace fe {

std::string Base64Encode(std::string_view bytes);
// InvalidArgument naming `what` for a length that is not a multiple of 4, a character outside the
// alphabet or padding anywhere but at the end.
Result<std::string> Base64Decode(std::string_view text, std::string_view what);

}  // namespace fe
