// evsse::Mounted: what evhttp::Mount, evhtp::Mount and the other Mount
// functions return: the mount's status and, when it succeeded, the handle
// that keeps the path mounted. Destroying the handle, or Unmount, takes the
// path off the server: evhttp answers 404 for it from then on and the path
// may be mounted again; libevhtp 1.2.18 cannot remove a callback, so there
// the path answers 404 and stays taken.
//
//   evsse::Mounted events = evsse::evhttp::Mount(http, "/events", hub);
//   if (!events.ok()) { ... events.status().ToString() ... }
//
// A temporary would unmount at the end of its statement, so ok() and
// status() cannot be called on one (`Mount(...).ok()` does not compile).
// An application that wants the mount for as long as the server lives says
// so with Release(): `Status s = Mount(...).Release();`.
//
// Lifetime: destroy in reverse order of creation. The handle is made after
// the server and the Hub, so it goes first; it must not outlive the server
// (Unmount touches it). It may outlive the Hub: a Hub that goes first takes
// its endpoints with it and the path answers 503 until it is unmounted.
// Loop thread of the server. Movable, not copyable.
#ifndef EVSSE_MOUNTED_H_
#define EVSSE_MOUNTED_H_

#include <functional>
#include <utility>

#include "evsse/status.h"

namespace evsse {

class [[nodiscard]] Mounted {
 public:
  // Nothing mounted (ok).
  Mounted() = default;
  // A mount that failed: nothing to unmount.
  Mounted(Status failed) : status_(std::move(failed)) {}  // NOLINT
  // A mount that succeeded: `unmount` takes it off again.
  explicit Mounted(std::function<void()> unmount)
      : unmount_(std::move(unmount)) {}
  ~Mounted() { Unmount(); }
  Mounted(Mounted&& other) noexcept
      : status_(std::move(other.status_)),
        unmount_(std::exchange(other.unmount_, nullptr)) {}
  Mounted& operator=(Mounted&& other) noexcept {
    if (this != &other) {
      Unmount();
      status_ = std::move(other.status_);
      unmount_ = std::exchange(other.unmount_, nullptr);
    }
    return *this;
  }
  Mounted(const Mounted&) = delete;
  Mounted& operator=(const Mounted&) = delete;

  // The mount's outcome. Only on a handle that is kept (see above).
  bool ok() const& { return status_.ok(); }
  const Status& status() const& { return status_; }
  bool ok() const&& = delete;
  const Status& status() const&& = delete;

  // mounted is true while the handle holds a mount.
  bool mounted() const { return static_cast<bool>(unmount_); }

  // Unmount takes the path off the server now (once; later calls do
  // nothing). The status stays as it was.
  void Unmount() {
    if (auto fn = std::exchange(unmount_, nullptr)) fn();
  }

  // Release gives the mount up to the server (it then lasts as long as the
  // server) and returns its status.
  Status Release() {
    unmount_ = nullptr;
    return status_;
  }

 private:
  Status status_;
  std::function<void()> unmount_;
};

}  // namespace evsse

#endif  // EVSSE_MOUNTED_H_
