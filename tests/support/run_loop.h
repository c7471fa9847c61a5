// RunLoopUntil: how every test drives its event loop until a condition
// holds, waiting on the condition (never a fixed sleep), bounded by a
// generous timeout that only a broken test reaches.
#ifndef EVSSE_TESTS_SUPPORT_RUN_LOOP_H_
#define EVSSE_TESTS_SUPPORT_RUN_LOOP_H_

#include <event2/event.h>

#include <chrono>
#include <functional>
#include <thread>

namespace evsse::testing {

// RunLoopUntil runs `base` until `pred()` holds or `timeout` passes and
// returns `pred()`. Without `poll`, each turn blocks until an event fires
// (the loop owns every socket the test watches); with it, `poll` runs after
// each non-blocking turn (clients that read their own sockets), with a short
// pause so that an idle wait does not spin a core.
inline bool RunLoopUntil(event_base* base, const std::function<bool()>& pred,
                         std::chrono::milliseconds timeout,
                         const std::function<void()>& poll = {}) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    if (pred()) return true;
    if (std::chrono::steady_clock::now() > deadline) return false;
    if (!poll) {
      // EVLOOP_ONCE waits for an event; a timer bounds the wait so that a
      // condition met by another thread is seen.
      event* wake = evtimer_new(
          base, [](evutil_socket_t, short, void*) {}, nullptr);
      timeval tv{0, 20 * 1000};
      evtimer_add(wake, &tv);
      event_base_loop(base, EVLOOP_ONCE);
      event_free(wake);
      continue;
    }
    event_base_loop(base, EVLOOP_NONBLOCK);
    poll();
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
}

// RunLoopFor runs `base` for `d` (for tests that check that nothing
// happens).
inline void RunLoopFor(event_base* base, std::chrono::milliseconds d,
                       const std::function<void()>& poll = {}) {
  RunLoopUntil(
      base, [] { return false; }, d, poll);
}

}  // namespace evsse::testing

#endif  // EVSSE_TESTS_SUPPORT_RUN_LOOP_H_
