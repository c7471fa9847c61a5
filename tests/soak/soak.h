// evsse-soak: hostile clients, connection floods and connect/disconnect
// churn against an in-process evsse server, with memory measured before,
// at peak and after. See tests/RELIABILITY.md ("Hostile clients and load").
//
// The server (evhttp or libevhtp, one Hub) runs its loop on the main
// thread; the clients run on a second thread with plain blocking sockets.
// Hub::Publish is the only call that crosses threads; the loop copies the
// Hub's stats into a shared snapshot every few milliseconds.
#ifndef EVSSE_TESTS_SOAK_SOAK_H_
#define EVSSE_TESTS_SOAK_SOAK_H_

#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>

#include "evsse/hub.h"

namespace evsse::soak {

struct Config {
  std::string mode;  // hostile | flood | churn
  bool evhtp = false;
  int rounds = 20;        // hostile
  int limit = 200;        // flood: max_connections
  int extra = 500;        // flood: connections beyond the limit
  int events = 20;        // flood: events published during the flood
  int cycles = 2000;      // churn
  double tolerance = 0;   // heap growth allowed over the baseline, fraction
  int64_t slack_kib = 0;  // ... plus this much
};

// Server: what the client thread may use.
struct Server {
  int port = 0;
  Hub* hub = nullptr;  // Publish only, from the client thread
  // Snapshot of hub->stats(), refreshed by the loop.
  HubStats stats() {
    std::lock_guard<std::mutex> l(mu);
    return snapshot;
  }
  std::mutex mu;
  HubStats snapshot;
  std::atomic<bool> stop{false};
};

// Memory: one reading of this process.
struct Memory {
  int64_t rss_kib = 0;
  int64_t heap_kib = 0;  // mallinfo2 bytes in use (0 under ASan)
  int fds = 0;
};
Memory ReadMemory(bool trim);

// WaitStats waits (up to 30 s) until pred(stats) holds.
template <class Pred>
bool WaitStats(Server* s, Pred pred) {
  for (int i = 0; i < 30000; ++i) {
    if (pred(s->stats())) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return false;
}

// Client side of each mode (client.cc); each returns an error message or "",
// and records peak memory in *peak.
std::string RunHostile(Server* s, const Config& c, Memory* peak);
std::string RunFlood(Server* s, const Config& c, Memory* peak);
std::string RunChurn(Server* s, const Config& c, Memory* peak);

// Shared with main.cc: publish `n` events of `size` bytes to `topic`.
bool PublishN(Server* s, const std::string& topic, int n, size_t size);

}  // namespace evsse::soak

#endif  // EVSSE_TESTS_SOAK_SOAK_H_
