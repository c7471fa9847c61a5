// evsse::Status and evsse::Result<T>: the one error type of the library.
//
// Status is a small code plus a human-readable message. Functions that can
// fail return Status (or Result<T> when they also produce a value); both are
// [[nodiscard]]. No exception crosses a libevent, evhtp or hiredis callback.
//
// Thread safety: plain values; safe to copy and move between threads.
#ifndef EVSSE_STATUS_H_
#define EVSSE_STATUS_H_

#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace evsse {

enum class StatusCode {
  kOk = 0,
  kInvalidArgument,     // bad input from a caller or a client
  kOutOfRange,          // a value outside its allowed range (sizes, counts)
  kResourceExhausted,   // a limit was hit (connections, topics, queue)
  kUnavailable,         // a dependency is down (Redis) or the hub is closing
  kFailedPrecondition,  // the call is not valid in the current state
  kPermissionDenied,
  kUnauthenticated,
  kNotFound,
  kCancelled,  // the operation was abandoned (shutdown)
  kInternal,
  // The outcome is not known: a request was sent to a dependency (Redis)
  // and its answer was lost (connection lost, command timeout), so it may
  // or may not have taken effect. Unlike kUnavailable (nothing was done,
  // safe to retry), retrying may apply it twice.
  kUnknown,
};

// StatusCodeName returns a stable lower-case name ("invalid_argument").
const char* StatusCodeName(StatusCode code);

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(StatusCode code, std::string message)
      : code_(code), message_(std::move(message)) {}

  static Status Ok() { return Status(); }

  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }

  // ToString returns "ok" or "<code name>: <message>".
  std::string ToString() const;

  // IgnoreError documents a deliberately dropped status.
  void IgnoreError() const {}

  friend bool operator==(const Status& a, const Status& b) {
    return a.code_ == b.code_ && a.message_ == b.message_;
  }

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

inline Status InvalidArgumentError(std::string m) {
  return Status(StatusCode::kInvalidArgument, std::move(m));
}
inline Status OutOfRangeError(std::string m) {
  return Status(StatusCode::kOutOfRange, std::move(m));
}
inline Status ResourceExhaustedError(std::string m) {
  return Status(StatusCode::kResourceExhausted, std::move(m));
}
inline Status UnavailableError(std::string m) {
  return Status(StatusCode::kUnavailable, std::move(m));
}
inline Status FailedPreconditionError(std::string m) {
  return Status(StatusCode::kFailedPrecondition, std::move(m));
}
inline Status CancelledError(std::string m) {
  return Status(StatusCode::kCancelled, std::move(m));
}
inline Status InternalError(std::string m) {
  return Status(StatusCode::kInternal, std::move(m));
}
inline Status UnknownError(std::string m) {
  return Status(StatusCode::kUnknown, std::move(m));
}

// Result<T> holds either a T or a non-OK Status.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}  // NOLINT: implicit by design
  Result(Status status) : v_(std::move(status)) {}  // NOLINT

  bool ok() const { return std::holds_alternative<T>(v_); }
  // status returns OK when a value is held.
  Status status() const { return ok() ? Status() : std::get<Status>(v_); }

  T& value() & { return std::get<T>(v_); }
  const T& value() const& { return std::get<T>(v_); }
  T&& value() && { return std::get<T>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

 private:
  std::variant<T, Status> v_;
};

inline const char* StatusCodeName(StatusCode code) {
  switch (code) {
    case StatusCode::kOk:
      return "ok";
    case StatusCode::kInvalidArgument:
      return "invalid_argument";
    case StatusCode::kOutOfRange:
      return "out_of_range";
    case StatusCode::kResourceExhausted:
      return "resource_exhausted";
    case StatusCode::kUnavailable:
      return "unavailable";
    case StatusCode::kFailedPrecondition:
      return "failed_precondition";
    case StatusCode::kPermissionDenied:
      return "permission_denied";
    case StatusCode::kUnauthenticated:
      return "unauthenticated";
    case StatusCode::kNotFound:
      return "not_found";
    case StatusCode::kCancelled:
      return "cancelled";
    case StatusCode::kInternal:
      return "internal";
    case StatusCode::kUnknown:
      return "unknown";
  }
  return "unknown";
}

inline std::string Status::ToString() const {
  if (ok()) return "ok";
  std::string s = StatusCodeName(code_);
  s += ": ";
  s += message_;
  return s;
}

}  // namespace evsse

#endif  // EVSSE_STATUS_H_
