// evsse-soak MODE [options]: see usage below and tests/RELIABILITY.md.
// Prints one JSON line; exits 0 when every check passed and memory came
// back within the tolerance, 1 otherwise, 2 on bad usage.
#include <dirent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/listener.h>
#include <malloc.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>

#include "evsse/evhtp.h"
#include "evsse/evhttp.h"
#include "soak.h"

// Last: onigposix.h (pulled in by evhtp.h) renames the POSIX regex names.
#include <evhtp/evhtp.h>

#if defined(__SANITIZE_ADDRESS__)
#define EVSSE_SOAK_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define EVSSE_SOAK_ASAN 1
#endif
#endif

namespace evsse::soak {

Memory ReadMemory(bool trim) {
  if (trim) malloc_trim(0);
  Memory m;
  long pages = 0, resident = 0;
  if (FILE* f = fopen("/proc/self/statm", "r")) {
    if (fscanf(f, "%ld %ld", &pages, &resident) != 2) resident = 0;
    fclose(f);
  }
  m.rss_kib = resident * (sysconf(_SC_PAGESIZE) / 1024);
#if !defined(EVSSE_SOAK_ASAN)
  m.heap_kib = static_cast<int64_t>(mallinfo2().uordblks / 1024);
#endif
  if (DIR* d = opendir("/proc/self/fd")) {
    while (dirent* e = readdir(d))
      if (e->d_name[0] != '.') ++m.fds;
    closedir(d);
    --m.fds;  // the DIR's own
  }
  return m;
}

bool PublishN(Server* s, const std::string& topic, int n, size_t size) {
  for (int i = 0; i < n; ++i)
    if (!s->hub->Publish(topic, {"", std::string(size, 'e')}).ok())
      return false;
  return true;
}

namespace {

const char kUsage[] =
    "usage: evsse-soak hostile|flood|churn [--adapter evhttp|evhtp]\n"
    "         [--rounds N]               hostile: rounds of every client (20)\n"
    "         [--limit N] [--extra N]    flood: max_connections (200) and\n"
    "                                    connections beyond it (500)\n"
    "         [--cycles N]               churn: connect/subscribe/disconnect\n"
    "                                    cycles (2000)\n"
    "         [--tolerance F] [--slack-kib N]  allowed growth of the heap in\n"
    "                                    use after the run: F * baseline + N\n"
    "                                    KiB (0.10, 1024)\n";

struct Timer {
  static void OnTick(evutil_socket_t, short, void* arg) {
    auto* self = static_cast<Timer*>(arg);
    {
      std::lock_guard<std::mutex> l(self->server->mu);
      self->server->snapshot = self->server->hub->stats();
    }
    if (self->server->stop) event_base_loopexit(self->base, nullptr);
  }
  Server* server;
  event_base* base;
};

std::string Json(const Config& c, const std::string& err, double secs,
                 const Memory& base, const Memory& peak, const Memory& after,
                 const HubStats& st, bool mem_ok) {
  char buf[2048];
  snprintf(
      buf, sizeof buf,
      "{\"mode\":\"%s\",\"adapter\":\"%s\",\"rounds\":%d,\"limit\":%d,"
      "\"extra\":%d,\"cycles\":%d,\"seconds\":%.2f,\"cycles_per_s\":%.0f,"
      "\"rss_kib\":{\"baseline\":%lld,\"peak\":%lld,\"after\":%lld},"
      "\"heap_kib\":{\"baseline\":%lld,\"peak\":%lld,\"after\":%lld},"
      "\"fds\":{\"baseline\":%d,\"peak\":%d,\"after\":%d},"
      "\"sessions_after\":%llu,\"connections_total\":%llu,"
      "\"shed\":%llu,\"slow_consumer_closes\":%llu,"
      "\"rejected\":%llu,\"memory_check\":\"%s\",\"ok\":%s%s%s%s}",
      c.mode.c_str(), c.evhtp ? "evhtp" : "evhttp", c.rounds, c.limit, c.extra,
      c.cycles, secs, c.mode == "churn" && secs > 0 ? c.cycles / secs : 0.0,
      (long long)base.rss_kib, (long long)peak.rss_kib,
      (long long)after.rss_kib, (long long)base.heap_kib,
      (long long)peak.heap_kib, (long long)after.heap_kib, base.fds, peak.fds,
      after.fds, (unsigned long long)st.connections_active,
      (unsigned long long)st.connections_total,
      (unsigned long long)st.connections_shed,
      (unsigned long long)st.slow_consumer_closes,
      (unsigned long long)st.requests_rejected,
#if defined(EVSSE_SOAK_ASAN)
      "skipped under ASan (LeakSanitizer checks at exit)",
#else
      mem_ok ? "ok" : "failed",
#endif
      err.empty() && mem_ok ? "true" : "false",
      err.empty() ? "" : ",\"error\":\"", err.c_str(), err.empty() ? "" : "\"");
  return buf;
}

int Run(const Config& c) {
  std::signal(SIGPIPE, SIG_IGN);
  // Floods need descriptors: raise the soft limit to the hard one.
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  event_base* base = event_base_new();
  HubOptions ho;
  ho.history_max_events = 100;
  ho.max_connections = static_cast<size_t>(c.limit);
  StreamOptions so;
  so.max_queued_bytes = 256 << 10;
  auto hub = Hub::Create(base, ho).value();
  Server server;
  server.hub = hub.get();
  struct ::evhttp* http = nullptr;
  evhtp_t* htp = nullptr;
  sockaddr_in a{};
  socklen_t len = sizeof a;
  // The bounds module/README.md recommends: an idle timeout and, on evhttp, a
  // header size limit (libevhtp has its own 8 KiB per line).
  if (!c.evhtp) {
    http = evhttp_new(base);
    evhttp_set_timeout(http, 10);
    evhttp_set_max_headers_size(http, 16 << 10);
    evhttp_bound_socket* b =
        evhttp_bind_socket_with_handle(http, "127.0.0.1", 0);
    if (!b ||
        !evsse::evhttp::Mount(http, "/events", hub.get(), so).Release().ok())
      return 1;
    getsockname(evhttp_bound_socket_get_fd(b), reinterpret_cast<sockaddr*>(&a),
                &len);
  } else {
    htp = evhtp_new(base, nullptr);
    timeval tv{10, 0};
    evhtp_set_timeouts(htp, &tv, &tv);
    if (evhtp_bind_socket(htp, "ipv4:127.0.0.1", 0, 1024) != 0 ||
        !evsse::evhtp::Mount(htp, "/events", hub.get(), so).Release().ok())
      return 1;
    getsockname(evconnlistener_get_fd(htp->server),
                reinterpret_cast<sockaddr*>(&a), &len);
  }
  server.port = ntohs(a.sin_port);
  Timer timer{&server, base};
  event* tick = event_new(base, -1, EV_PERSIST, &Timer::OnTick, &timer);
  timeval every{0, 2000};
  event_add(tick, &every);

  // The topics the clients use get a full history before the baseline, so
  // retained events do not count as growth.
  for (const char* t : {"a", "b", "first", "mute", "flood"})
    PublishN(&server, t, 100,
             c.mode == "hostile" && !strcmp(t, "mute") ? 4000 : 200);
  for (int i = 0; i < 16; ++i)
    PublishN(&server, "churn" + std::to_string(i), 100, 100);

  std::string err;
  Memory baseline, peak, after;
  double secs = 0;
  std::thread clients([&] {
    // A short warm-up, so that allocator pools reach their working size.
    Config warm = c;
    warm.rounds = 1;
    warm.cycles = std::min(c.cycles, 200);
    warm.extra = std::min(c.extra, 20);
    Memory ignore;
    if (c.mode == "hostile") err = RunHostile(&server, warm, &ignore);
    if (c.mode == "churn") err = RunChurn(&server, warm, &ignore);
    baseline = ReadMemory(true);
    peak = baseline;
    auto t0 = std::chrono::steady_clock::now();
    if (err.empty()) {
      if (c.mode == "hostile") err = RunHostile(&server, c, &peak);
      if (c.mode == "flood") err = RunFlood(&server, c, &peak);
      if (c.mode == "churn") err = RunChurn(&server, c, &peak);
    }
    secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0)
               .count();
    // Let the server close what it still holds, then measure.
    WaitStats(&server,
              [](const HubStats& st) { return st.connections_active == 0; });
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    after = ReadMemory(true);
    server.stop = true;
  });
  event_base_dispatch(base);
  clients.join();
  HubStats st = hub->stats();
  // The check is on the heap in use (mallinfo2): what a leak grows. RSS is
  // reported, not checked: glibc keeps freed pages of a fragmented heap
  // mapped, so RSS stays near its peak after a flood even when every byte
  // was freed.
  bool mem_ok = after.heap_kib <=
                    baseline.heap_kib +
                        static_cast<int64_t>(c.tolerance * baseline.heap_kib) +
                        c.slack_kib &&
                after.fds <= baseline.fds;
#if defined(EVSSE_SOAK_ASAN)
  mem_ok = after.fds <= baseline.fds;
#endif
  if (err.empty() && st.connections_active != 0) err = "sessions left";
  printf("%s\n", Json(c, err, secs, baseline, peak, after, st, mem_ok).c_str());
  event_free(tick);
  if (http) evhttp_free(http);
  hub.reset();
  if (htp) {
    event_base_loop(base, EVLOOP_NONBLOCK);
    evhtp_unbind_socket(htp);
    evhtp_free(htp);
  }
  event_base_free(base);
  return err.empty() && mem_ok ? 0 : 1;
}

}  // namespace
}  // namespace evsse::soak

int main(int argc, char** argv) {
  evsse::soak::Config c;
  c.tolerance = 0.10;
  c.slack_kib = 1024;
  if (argc < 2) {
    fputs(evsse::soak::kUsage, stderr);
    return 2;
  }
  c.mode = argv[1];
  if (c.mode != "hostile" && c.mode != "flood" && c.mode != "churn") {
    fputs(evsse::soak::kUsage, stderr);
    return 2;
  }
  if (c.mode != "flood") c.limit = 10000;
  for (int i = 2; i < argc; ++i) {
    std::string f = argv[i];
    if (i + 1 >= argc) {
      fputs(evsse::soak::kUsage, stderr);
      return 2;
    }
    std::string v = argv[++i];
    if (f == "--adapter" && (v == "evhttp" || v == "evhtp")) {
      c.evhtp = v == "evhtp";
    } else if (f == "--rounds") {
      c.rounds = std::atoi(v.c_str());
    } else if (f == "--limit") {
      c.limit = std::atoi(v.c_str());
    } else if (f == "--extra") {
      c.extra = std::atoi(v.c_str());
    } else if (f == "--cycles") {
      c.cycles = std::atoi(v.c_str());
    } else if (f == "--tolerance") {
      c.tolerance = std::atof(v.c_str());
    } else if (f == "--slack-kib") {
      c.slack_kib = std::atoll(v.c_str());
    } else {
      fputs(evsse::soak::kUsage, stderr);
      return 2;
    }
  }
  if (c.rounds < 1 || c.limit < 1 || c.extra < 0 || c.cycles < 1) {
    fputs(evsse::soak::kUsage, stderr);
    return 2;
  }
  return evsse::soak::Run(c);
}
