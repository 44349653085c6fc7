// The forkd API as forkctl sees it: HTTP/1.1 + JSON over forkd's Unix socket (the contract is the
// daemon's OpenAPI document, engine/forkd). One request per connection; replies are parsed JSON.
//
// Errors. A reply with a non-2xx status becomes a Status whose code is the server's "code" field
// (fe::ErrorCodeName spelling; unknown names map by HTTP status) and whose message is
// "<server message> (<code>, HTTP <status>)", ready to print after "forkctl: ". A socket that does
// not answer is ErrorCode::kIo with a message naming the socket and how to start forkd.
#pragma once

#include <chrono>
#include <functional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "base/status.h"

namespace fe::engine::forkctl {

inline constexpr std::string_view kDefaultSocket = "/run/forkengine/forkd.sock";
inline constexpr std::string_view kSocketEnvironment = "FORKD_SOCKET";

class ApiClient {
 public:
  // Forks of many instances can take a while on a copy backend: the default read timeout is long.
  explicit ApiClient(std::string socket_path, std::chrono::seconds timeout = std::chrono::seconds(600));

  // `path` is the route below the host, starting with "/v1/". The reply body parsed as JSON (null
  // for an empty body, as DELETE's 204 has).
  Result<nlohmann::json> Get(const std::string& path) const;
  Result<nlohmann::json> Post(const std::string& path, const nlohmann::json& body) const;
  Result<nlohmann::json> Patch(const std::string& path, const nlohmann::json& body) const;
  Result<nlohmann::json> Delete(const std::string& path) const;

  // GET `path` that streams newline-delimited JSON (GET /v1/events): each object goes to `on_value`
  // as it arrives, until forkd ends the stream (Ok) or `on_value` returns false (Ok). Waits for the
  // next line without a time limit.
  Status Stream(const std::string& path, const std::function<bool(const nlohmann::json&)>& on_value) const;

  const std::string& socket_path() const { return socket_path_; }

 private:
  Result<nlohmann::json> Send(std::string_view method, const std::string& path, const std::string& body) const;

  std::string socket_path_;
  std::chrono::seconds timeout_;
};

// The Status for a non-2xx reply (see above). `body` is the raw reply body: JSON
// {"code","message"} from forkd, anything else from a proxy or a bug.
Status ErrorFromReply(int http_status, std::string_view body);

// The ErrorCode spelled `name` (ErrorCodeName), or kInternal when no code has that name.
ErrorCode ErrorCodeFromName(std::string_view name);

// The Status for a request that got no reply at all; `error` says why (httplib's error text).
Status UnreachableError(const std::string& socket_path, std::string_view method, const std::string& path,
                        std::string_view error);

// Path segments from user input (an id or a name) are percent-encoded so "a/b" stays one segment.
std::string EncodePathSegment(std::string_view segment);

}  // namespace fe::engine::forkctl
