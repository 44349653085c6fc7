#include "engine/forkctl/api_client.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstring>

#include "base/http/http_client.h"

namespace fe::engine::forkctl {
namespace {

// What an HTTP status means when the body carries no code we know: the inverse of forkd's own
// mapping (engine/forkd/http_errors.cc), which differs from the hypervisors' (base/http).
ErrorCode ErrorCodeForStatus(int http_status) {
  switch (http_status) {
    case 400:
    case 413: return ErrorCode::kInvalidArgument;
    case 401:
    case 403: return ErrorCode::kPermissionDenied;
    case 404: return ErrorCode::kNotFound;
    case 409: return ErrorCode::kFailedPrecondition;
    case 422: return ErrorCode::kUnsupported;
    case 503: return ErrorCode::kUnavailable;
    case 504: return ErrorCode::kTimedOut;
    case 507: return ErrorCode::kNoSpace;
    default: return http_status >= 500 ? ErrorCode::kInternal : ErrorCode::kIo;
  }
}

}  // namespace

ApiClient::ApiClient(std::string socket_path, std::chrono::seconds timeout)
    : socket_path_(std::move(socket_path)), timeout_(timeout) {}

Result<nlohmann::json> ApiClient::Get(const std::string& path) const { return Send("GET", path, ""); }

Result<nlohmann::json> ApiClient::Post(const std::string& path, const nlohmann::json& body) const {
  return Send("POST", path, body.dump());
}

Result<nlohmann::json> ApiClient::Patch(const std::string& path, const nlohmann::json& body) const {
  return Send("PATCH", path, body.dump());
}

Result<nlohmann::json> ApiClient::Delete(const std::string& path) const { return Send("DELETE", path, ""); }

Result<nlohmann::json> ApiClient::Send(std::string_view method, const std::string& path,
                                       const std::string& body) const {
  const http::HttpClient client(socket_path_, "forkd", timeout_);
  Result<http::Response> reply = client.Send(method, path, body);
  if (!reply.ok()) return UnreachableError(socket_path_, method, path, reply.status().message());
  if (reply->status < 200 || reply->status >= 300) return ErrorFromReply(reply->status, reply->body);
  if (reply->body.empty()) return nlohmann::json();
  nlohmann::json parsed = nlohmann::json::parse(reply->body, nullptr, /*allow_exceptions=*/false);
  if (parsed.is_discarded()) {
    return Status::Internal(client.Describe(method, path) + ": HTTP " + std::to_string(reply->status) +
                            " reply is not JSON");
  }
  return parsed;
}

Status ApiClient::Stream(const std::string& path, const std::function<bool(const nlohmann::json&)>& on_value) const {
  const http::HttpClient client(socket_path_, "forkd", timeout_);
  std::string pending;  // a line not yet complete
  Status broken;
  auto receive = [&](std::string_view piece) {
    pending.append(piece);
    size_t start = 0;
    for (size_t end; (end = pending.find('\n', start)) != std::string::npos; start = end + 1) {
      const std::string_view line = std::string_view(pending).substr(start, end - start);
      if (line.empty()) continue;
      nlohmann::json value = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
      if (value.is_discarded()) {
        broken = Status::Internal(client.Describe("GET", path) + ": a streamed line is not JSON: " + std::string(line));
        return false;
      }
      if (!on_value(value)) return false;
    }
    pending.erase(0, start);
    return true;
  };
  // A day without an event is not a broken stream; the client, not a timer, decides when to stop.
  constexpr std::chrono::hours kIdleLimit{24 * 365};
  Result<http::Response> reply = client.Stream(path, receive, kIdleLimit);
  if (!reply.ok()) return UnreachableError(socket_path_, "GET", path, reply.status().message());
  if (reply->status < 200 || reply->status >= 300) return ErrorFromReply(reply->status, reply->body);
  return broken;
}

ErrorCode ErrorCodeFromName(std::string_view name) {
  for (ErrorCode code : ErrorCodes()) {
    if (ErrorCodeName(code) == name) return code;
  }
  return ErrorCode::kInternal;
}

Status ErrorFromReply(int http_status, std::string_view body) {
  std::string status_text = "HTTP " + std::to_string(http_status);
  nlohmann::json parsed = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
  const bool structured = parsed.is_object() && parsed.contains("code") && parsed["code"].is_string() &&
                          parsed.contains("message") && parsed["message"].is_string();
  if (!structured) {
    std::string text(body.substr(0, 200));
    while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) text.pop_back();
    return Status(ErrorCodeForStatus(http_status),
                  (text.empty() ? std::string("request failed") : text) + " (" + status_text + ")");
  }
  const std::string code_name = parsed["code"].get<std::string>();
  ErrorCode code = ErrorCodeFromName(code_name);
  if (code == ErrorCode::kInternal && code_name != "internal") code = ErrorCodeForStatus(http_status);
  return Status(code, parsed["message"].get<std::string>() + " (" + code_name + ", " + status_text + ")");
}

Status UnreachableError(const std::string& socket_path, std::string_view method, const std::string& path,
                        std::string_view error) {
  const std::string hint = "start it with `forkd --socket " + socket_path +
                           "`, or point forkctl at its socket with --socket or " + std::string(kSocketEnvironment);
  struct stat st {};
  if (::stat(socket_path.c_str(), &st) != 0) {
    int err = errno;
    if (err == ENOENT) return Status::Io("forkd is not running: no socket at " + socket_path + " (" + hint + ")");
    return Status::Io("cannot reach forkd at " + socket_path + ": " + std::strerror(err) +
                      (err == EACCES ? " (forkd's socket is only for root)" : ""));
  }
  if (!S_ISSOCK(st.st_mode)) {
    return Status::Io(socket_path + " is not a socket: is --socket right?");
  }
  if (::access(socket_path.c_str(), W_OK) != 0) {
    return Status::PermissionDenied("cannot reach forkd at " + socket_path + ": " + std::strerror(errno) +
                                    " (forkd's socket is only for root)");
  }
  return Status::Io("forkd does not answer at " + socket_path + " (" + std::string(method) + " " + path + ": " +
                    std::string(error) + "); is it running? " + hint);
}

std::string EncodePathSegment(std::string_view segment) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (char c : segment) {
    unsigned char byte = static_cast<unsigned char>(c);
    if (std::isalnum(byte) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += c;
    } else {
      out += '%';
      out += kHex[byte >> 4];
      out += kHex[byte & 0xf];
    }
  }
  return out;
}

}  // namespace fe::engine::forkctl
