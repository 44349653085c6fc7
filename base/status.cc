#include "base/status.h"

#include <cerrno>
#include <cstring>

namespace fe {

std::vector<ErrorCode> ErrorCodes() {
  std::vector<ErrorCode> codes;
  for (int code = static_cast<int>(ErrorCode::kOk) + 1; code <= static_cast<int>(ErrorCode::kInternal); ++code) {
    codes.push_back(static_cast<ErrorCode>(code));
  }
  return codes;
}

std::string_view ErrorCodeName(ErrorCode code) {
  switch (code) {
    case ErrorCode::kOk: return "ok";
    case ErrorCode::kInvalidArgument: return "invalid_argument";
    case ErrorCode::kNotFound: return "not_found";
    case ErrorCode::kAlreadyExists: return "already_exists";
    case ErrorCode::kPermissionDenied: return "permission_denied";
    case ErrorCode::kUnsupported: return "unsupported";
    case ErrorCode::kInvalidContent: return "invalid_content";
    case ErrorCode::kNoSpace: return "no_space";
    case ErrorCode::kBusy: return "busy";
    case ErrorCode::kFailedPrecondition: return "failed_precondition";
    case ErrorCode::kUnavailable: return "unavailable";
    case ErrorCode::kInsufficientResources: return "insufficient_resources";
    case ErrorCode::kTimedOut: return "timed_out";
    case ErrorCode::kIo: return "io";
    case ErrorCode::kInternal: return "internal";
  }
  return "unknown";
}

ErrorCode ErrorCodeFromErrno(int err) {
  switch (err) {
    case 0: return ErrorCode::kOk;
    case ENOENT:
    case ENOTDIR: return ErrorCode::kNotFound;
    case EEXIST:
    case ENOTEMPTY: return ErrorCode::kAlreadyExists;
    case EACCES:
    case EPERM:
    case EROFS: return ErrorCode::kPermissionDenied;
    case EOPNOTSUPP:
    case EXDEV:
    case ENOSYS:
    case ENOTTY: return ErrorCode::kUnsupported;
    case ENOSPC:
    case EDQUOT:
    case EFBIG: return ErrorCode::kNoSpace;
    case EBUSY:
    case EAGAIN:
    case ETXTBSY: return ErrorCode::kBusy;
    case ETIMEDOUT: return ErrorCode::kTimedOut;
    case EINVAL:
    case ELOOP:
    case ENAMETOOLONG:
    case EISDIR: return ErrorCode::kInvalidArgument;
    default: return ErrorCode::kIo;
  }
}

Status Status::FromErrno(int err, std::string_view operation, std::string_view path) {
  std::string message;
  message.reserve(operation.size() + path.size() + 48);
  message.append(operation).append(" ").append(path).append(": ").append(std::strerror(err));
  Status status(ErrorCodeFromErrno(err), std::move(message));
  status.errno_ = err;
  return status;
}

std::string Status::ToString() const {
  if (ok()) return "ok";
  return std::string(ErrorCodeName(code_)) + ": " + message_;
}

Status Status::WithCode(ErrorCode code) const {
  if (ok()) return *this;
  Status changed = *this;
  changed.code_ = code;
  return changed;
}

Status Status::Annotate(std::string_view context) const {
  if (ok()) return *this;
  Status annotated = *this;
  annotated.message_ = std::string(context) + ": " + message_;
  return annotated;
}

}  // namespace fe
