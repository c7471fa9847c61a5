// sse_test_server: a small evsse server on loopback for the integration tests
// that drive third-party clients against evsse (tests/js: the npm
// `eventsource` package; tests/curl: curl -N). Public headers only.
//
//   sse_test_server [--port N] [--max-lifetime-ms N] [--retry-ms N]
//                   [--heartbeat-ms N] [--exit-after-ms N]
//
// It always binds 127.0.0.1. With --port 0 (the default) the kernel picks the
// port. Once listening it prints `PORT <n>` on stdout (flushed), so a test can
// read the port before it connects.
//
// Endpoints:
//   GET  /events?topic=T        the stream: heartbeat --heartbeat-ms (1 s),
//                               retry: --retry-ms exactly (no jitter), streams
//                               ended after --max-lifetime-ms (0: never), so
//                               clients reconnect with Last-Event-ID
//   POST /publish?topic=T[&event=TYPE]  open publish (allow_unauthenticated)
//   GET  /stop-events?topic=T   a stream endpoint whose auth hook answers
//                               204 ("stop reconnecting") to every request
//   GET  /stats                 JSON counters: {"stop_hits":N,
//                               "events_requests":N,"last_event_ids":[...],
//                               "connections_active":N,
//                               "connections_total":N,"lifetime_closes":N,
//                               "replays":N,"replayed_events":N,
//                               "gaps":N}; last_event_ids holds the
//                               Last-Event-ID header of each /events request
//                               in order (null when absent)
//
// SIGINT/SIGTERM drain the streams for 200 ms and exit 0. --exit-after-ms
// (0: never) ends the server on its own, so a test that dies cannot leave it
// running.
#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <evsse/evhttp.h>
#include <evsse/hub.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace {

struct Server {
  event_base* base = nullptr;
  evhttp* http = nullptr;
  evsse::Hub* hub = nullptr;
  bool stopping = false;
  uint64_t stop_hits = 0;
  uint64_t events_requests = 0;
  std::vector<std::optional<std::string>> last_event_ids;
};

// ParseMillis reads a non-negative decimal number of milliseconds.
bool ParseMillis(const char* text, long long* out) {
  char* end = nullptr;
  long long v = std::strtoll(text, &end, 10);
  if (end == text || *end != '\0' || v < 0) return false;
  *out = v;
  return true;
}

// AppendJsonString appends `s` as a JSON string literal.
void AppendJsonString(std::string& out, std::string_view s) {
  out += '"';
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  out += '"';
}

void OnStats(evhttp_request* req, void* arg) {
  auto* s = static_cast<Server*>(arg);
  evsse::HubStats st = s->hub->stats();
  std::string json =
      "{\"stop_hits\":" + std::to_string(s->stop_hits) +
      ",\"events_requests\":" + std::to_string(s->events_requests) +
      ",\"last_event_ids\":[";
  for (size_t i = 0; i < s->last_event_ids.size(); ++i) {
    if (i) json += ',';
    if (s->last_event_ids[i])
      AppendJsonString(json, *s->last_event_ids[i]);
    else
      json += "null";
  }
  json += "],\"connections_active\":" + std::to_string(st.connections_active) +
          ",\"connections_total\":" + std::to_string(st.connections_total) +
          ",\"lifetime_closes\":" + std::to_string(st.lifetime_closes) +
          ",\"replays\":" + std::to_string(st.replays) +
          ",\"replayed_events\":" + std::to_string(st.replayed_events) +
          ",\"gaps\":" + std::to_string(st.gaps) + "}\n";
  evkeyvalq* out = evhttp_request_get_output_headers(req);
  evhttp_add_header(out, "Content-Type", "application/json");
  evhttp_add_header(out, "Cache-Control", "no-store");
  evbuffer* body = evbuffer_new();
  evbuffer_add(body, json.data(), json.size());
  evhttp_send_reply(req, 200, "OK", body);
  evbuffer_free(body);
}

void Stop(Server* s, const char* why) {
  if (s->stopping) return;
  s->stopping = true;
  std::fprintf(stderr, "sse_test_server: %s, draining\n", why);
  s->hub->Shutdown(std::chrono::milliseconds(200), [s] {
    timeval grace{0, 100 * 1000};  // let the last bytes leave
    event_base_loopexit(s->base, &grace);
  });
}

void OnSignal(evutil_socket_t, short, void* arg) {
  Stop(static_cast<Server*>(arg), "signal");
}

void OnExitTimer(evutil_socket_t, short, void* arg) {
  Stop(static_cast<Server*>(arg), "--exit-after-ms reached");
}

int Usage(const char* argv0) {
  std::fprintf(stderr,
               "usage: %s [--port N] [--max-lifetime-ms N] [--retry-ms N] "
               "[--heartbeat-ms N] [--exit-after-ms N]\n",
               argv0);
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  long long port = 0, max_lifetime_ms = 0, retry_ms = 2000, heartbeat_ms = 1000,
            exit_after_ms = 0;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    long long* target = nullptr;
    if (a == "--port")
      target = &port;
    else if (a == "--max-lifetime-ms")
      target = &max_lifetime_ms;
    else if (a == "--retry-ms")
      target = &retry_ms;
    else if (a == "--heartbeat-ms")
      target = &heartbeat_ms;
    else if (a == "--exit-after-ms")
      target = &exit_after_ms;
    if (!target || i + 1 >= argc || !ParseMillis(argv[++i], target))
      return Usage(argv[0]);
  }
  if (port > 65535) return Usage(argv[0]);
  std::signal(SIGPIPE, SIG_IGN);

  Server s;
  s.base = event_base_new();
  s.http = evhttp_new(s.base);
  evhttp_set_timeout(s.http, 30);
  evhttp_bound_socket* bound = evhttp_bind_socket_with_handle(
      s.http, "127.0.0.1", static_cast<uint16_t>(port));
  if (!bound) {
    std::fprintf(stderr, "sse_test_server: cannot listen on 127.0.0.1:%lld\n",
                 port);
    return 1;
  }
  sockaddr_in addr{};
  socklen_t len = sizeof addr;
  if (getsockname(evhttp_bound_socket_get_fd(bound),
                  reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    std::perror("sse_test_server: getsockname");
    return 1;
  }

  evsse::HubOptions hub_options;
  hub_options.log = [](evsse::LogLevel, std::string_view m) {
    std::fprintf(stderr, "evsse: %.*s\n", int(m.size()), m.data());
  };
  auto hub = evsse::Hub::Create(s.base, hub_options);
  if (!hub.ok()) {
    std::fprintf(stderr, "sse_test_server: %s\n",
                 hub.status().ToString().c_str());
    return 1;
  }
  s.hub = hub->get();

  evsse::StreamOptions events;
  events.heartbeat = evsse::Millis(heartbeat_ms);
  events.retry = evsse::Millis(retry_ms);
  events.retry_jitter = evsse::Millis(0);
  events.max_lifetime = evsse::Millis(max_lifetime_ms);
  events.lifetime_jitter = evsse::Millis(0);
  // Allows every request; records what each one resumes from.
  events.auth = [&s](const evsse::Request& r) {
    ++s.events_requests;
    const char* id = r.header("Last-Event-ID");
    s.last_event_ids.push_back(id ? std::optional<std::string>(id)
                                  : std::nullopt);
    return evsse::AuthDecision::Allow();
  };

  evsse::StreamOptions stop = events;
  stop.auth = [&s](const evsse::Request&) {
    ++s.stop_hits;
    return evsse::AuthDecision::Deny(204, "");
  };

  evsse::PublishOptions publish;
  publish.allow_unauthenticated = true;

  // Mounted for the server's life (Release): the server goes last here.
  evsse::Status st =
      evsse::evhttp::Mount(s.http, "/events", s.hub, events).Release();
  if (st.ok())
    st = evsse::evhttp::Mount(s.http, "/stop-events", s.hub, stop).Release();
  if (st.ok())
    st = evsse::evhttp::MountPublish(s.http, "/publish", s.hub, publish)
             .Release();
  if (!st.ok()) {
    std::fprintf(stderr, "sse_test_server: %s\n", st.ToString().c_str());
    return 1;
  }
  evhttp_set_cb(s.http, "/stats", OnStats, &s);

  event* sigint = evsignal_new(s.base, SIGINT, OnSignal, &s);
  event* sigterm = evsignal_new(s.base, SIGTERM, OnSignal, &s);
  event_add(sigint, nullptr);
  event_add(sigterm, nullptr);
  event* exit_timer = evtimer_new(s.base, OnExitTimer, &s);
  if (exit_after_ms > 0) {
    timeval tv{static_cast<time_t>(exit_after_ms / 1000),
               static_cast<suseconds_t>(exit_after_ms % 1000 * 1000)};
    evtimer_add(exit_timer, &tv);
  }

  std::printf("PORT %u\n", unsigned{ntohs(addr.sin_port)});
  std::fflush(stdout);
  event_base_dispatch(s.base);

  event_free(exit_timer);
  event_free(sigint);
  event_free(sigterm);
  evhttp_free(s.http);  // the server goes before the Hub
  hub->reset();
  event_base_free(s.base);
  return 0;
}
