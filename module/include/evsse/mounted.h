// evsse::Mounted: the handle of one mounted endpoint (evhttp::Mount,
// evhtp::Mount, ... with their `mounted` argument). Destroying it, or
// Unmount, takes the path off the server: evhttp answers 404 for it from
// then on and the path may be mounted again; libevhtp 1.2.18 cannot remove
// a callback, so there the path answers 404 and stays taken.
//
// Lifetime: destroy in reverse order of creation. The handle is made after
// the server and the Hub, so it goes first; it must not outlive the server
// (Unmount touches it). It may outlive the Hub: a Hub that goes first takes
// its endpoints with it and the path answers 503 until it is unmounted.
// Loop thread of the server. Movable, not copyable. Without a handle, a
// mount lasts as long as the server.
#ifndef EVSSE_MOUNTED_H_
#define EVSSE_MOUNTED_H_

#include <functional>
#include <utility>

namespace evsse {

class Mounted {
 public:
  Mounted() = default;
  explicit Mounted(std::function<void()> unmount)
      : unmount_(std::move(unmount)) {}
  ~Mounted() { Unmount(); }
  Mounted(Mounted&& other) noexcept
      : unmount_(std::exchange(other.unmount_, nullptr)) {}
  Mounted& operator=(Mounted&& other) noexcept {
    if (this != &other) {
      Unmount();
      unmount_ = std::exchange(other.unmount_, nullptr);
    }
    return *this;
  }
  Mounted(const Mounted&) = delete;
  Mounted& operator=(const Mounted&) = delete;

  // Unmount takes the path off the server now (once; later calls do
  // nothing).
  void Unmount() {
    if (auto fn = std::exchange(unmount_, nullptr)) fn();
  }
  bool mounted() const { return static_cast<bool>(unmount_); }

 private:
  std::function<void()> unmount_;
};

}  // namespace evsse

#endif  // EVSSE_MOUNTED_H_
