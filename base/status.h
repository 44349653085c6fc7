// Status and Result<T>: expected failures as cheap values made where the syscall fails.
//
// A Status is either ok or carries an ErrorCode (stable, for callers to branch on and for the daemon
// to map to HTTP codes) and a message naming the operation, the path or id involved and, for system
// errors, errno's text. Exceptions are reserved for programming errors.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace fe {

enum class ErrorCode {
  kOk = 0,
  kInvalidArgument,
  kNotFound,
  kAlreadyExists,
  kPermissionDenied,
  kUnsupported,
  kInvalidContent,  // what a request points at (a guest directory, a file in it) is not acceptable
  kNoSpace,
  kBusy,
  kFailedPrecondition,     // the object is not in a state that allows the operation
  kUnavailable,            // nothing ready now and the caller asked not to wait (retry later)
  kInsufficientResources,  // a finite resource other than space is used up (the subnet's addresses)
  kTimedOut,               // what the operation waited on (a guest agent, a hypervisor) did not answer in time
  kIo,
  kInternal,  // last: ErrorCodes() lists the codes up to it
};

std::string_view ErrorCodeName(ErrorCode code);
// Every code but kOk, in declaration order.
std::vector<ErrorCode> ErrorCodes();

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(ErrorCode code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status Ok() { return {}; }
  // One factory per code, so a failure reads as what it is: Status::NotFound("instance 'x' not found").
  static Status InvalidArgument(std::string message) { return {ErrorCode::kInvalidArgument, std::move(message)}; }
  static Status NotFound(std::string message) { return {ErrorCode::kNotFound, std::move(message)}; }
  static Status AlreadyExists(std::string message) { return {ErrorCode::kAlreadyExists, std::move(message)}; }
  static Status PermissionDenied(std::string message) { return {ErrorCode::kPermissionDenied, std::move(message)}; }
  static Status Unsupported(std::string message) { return {ErrorCode::kUnsupported, std::move(message)}; }
  static Status InvalidContent(std::string message) { return {ErrorCode::kInvalidContent, std::move(message)}; }
  static Status NoSpace(std::string message) { return {ErrorCode::kNoSpace, std::move(message)}; }
  static Status Busy(std::string message) { return {ErrorCode::kBusy, std::move(message)}; }
  static Status FailedPrecondition(std::string message) { return {ErrorCode::kFailedPrecondition, std::move(message)}; }
  static Status Unavailable(std::string message) { return {ErrorCode::kUnavailable, std::move(message)}; }
  static Status InsufficientResources(std::string message) {
    return {ErrorCode::kInsufficientResources, std::move(message)};
  }
  static Status TimedOut(std::string message) { return {ErrorCode::kTimedOut, std::move(message)}; }
  static Status Io(std::string message) { return {ErrorCode::kIo, std::move(message)}; }
  static Status Internal(std::string message) { return {ErrorCode::kInternal, std::move(message)}; }
  // "<operation> <path>: <strerror(err)>", with the code mapped from errno.
  static Status FromErrno(int err, std::string_view operation, std::string_view path);

  bool ok() const { return code_ == ErrorCode::kOk; }
  ErrorCode code() const { return code_; }
  // The errno this status was made from, or 0.
  int sys_errno() const { return errno_; }
  const std::string& message() const { return message_; }
  std::string ToString() const;

  // Prefixes the message with context, keeping code and errno: "cloning /a to /b: open ...".
  Status Annotate(std::string_view context) const;
  // The same failure under another code (message and errno kept); an ok Status stays ok.
  Status WithCode(ErrorCode code) const;

 private:
  ErrorCode code_ = ErrorCode::kOk;
  int errno_ = 0;
  std::string message_;
};

ErrorCode ErrorCodeFromErrno(int err);

// Either a value or a non-ok Status.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : state_(std::move(value)) {}
  Result(Status status) : state_(std::move(status)) {
    if (std::get<Status>(state_).ok()) {
      state_ = Status(ErrorCode::kInternal, "Result constructed from an ok Status");
    }
  }

  bool ok() const { return std::holds_alternative<T>(state_); }
  const Status& status() const {
    static const Status kOk;
    return ok() ? kOk : std::get<Status>(state_);
  }
  T& value() & { return std::get<T>(state_); }
  const T& value() const& { return std::get<T>(state_); }
  T&& value() && { return std::get<T>(std::move(state_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

 private:
  std::variant<T, Status> state_;
};

}  // namespace fe

// Returns early from a function returning Status or Result<T> when `expr` is not ok.
#define FE_RETURN_IF_ERROR(expr)             \
  do {                                       \
    ::fe::Status fe_status_ = (expr);        \
    if (!fe_status_.ok()) return fe_status_; \
  } while (0)

#define FE_STATUS_CONCAT_INNER_(a, b) a##b
#define FE_STATUS_CONCAT_(a, b) FE_STATUS_CONCAT_INNER_(a, b)

// `FE_ASSIGN_OR_RETURN(auto fd, OpenBeneath(...));` declares (or assigns) `lhs` from the value of a
// Result, or returns its Status from the enclosing function.
#define FE_ASSIGN_OR_RETURN(lhs, expr) FE_ASSIGN_OR_RETURN_IMPL_(FE_STATUS_CONCAT_(fe_result_, __LINE__), lhs, expr)
#define FE_ASSIGN_OR_RETURN_IMPL_(result, lhs, expr) \
  auto result = (expr);                              \
  if (!result.ok()) return result.status();          \
  lhs = std::move(result).value()
