// evhtp_hello: the smallest embedding of evsse into an existing libevhtp
// server, on the in-process broker.
//
//   evhtp_hello [--port N] [--bind ADDR] [--token SECRET] [--redis HOST:PORT]
//
// With --redis, several of them on one Redis form one multi-node service:
// publish on any node, receive and resume on every node.
//
//   curl -N 'http://127.0.0.1:8080/events?topic=news'
//   curl -X POST --data 'hello' 'http://127.0.0.1:8080/publish?topic=news'
//
// Without --token the publish endpoint is open, so the server binds to
// 127.0.0.1 unless --bind says otherwise.
#include <event2/buffer.h>
#include <event2/event.h>
#include <evhtp/evhtp.h>
#include <evsse/evhtp.h>
#include <evsse/hub.h>
#include <evsse/redis.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>

namespace {

struct Server {
  event_base* base = nullptr;
  evhtp_t* htp = nullptr;
  evsse::Hub* hub = nullptr;
};

// The application's own route, untouched by evsse. evhtp_set_cb matches
// prefixes, so it is the default callback and answers "/" only.
void OnIndex(evhtp_request_t* req, void*) {
  if (std::strcmp(req->uri->path->full, "/") != 0) {
    evhtp_send_reply(req, EVHTP_RES_NOTFOUND);
    return;
  }
  evbuffer_add_printf(req->buffer_out,
                      "evhtp_hello: GET /events?topic=T, "
                      "POST /publish?topic=T\n");
  evhtp_send_reply(req, EVHTP_RES_OK);
}

// SIGINT/SIGTERM: drain the streams (spread over 5 s), then stop. libevhtp
// 1.2.18's evhtp_free does not close connections, so the streams end first.
void OnSignal(evutil_socket_t, short, void* arg) {
  auto* s = static_cast<Server*>(arg);
  std::fprintf(stderr, "evhtp_hello: draining\n");
  s->hub->Shutdown(std::chrono::seconds(5), [s] {
    evhtp_unbind_socket(s->htp);
    timeval flush{0, 500000};  // the last bytes (final retry hints) go out
    event_base_loopexit(s->base, &flush);
  });
}

}  // namespace

int main(int argc, char** argv) {
  int port = 8080;
  std::string bind = "127.0.0.1", token, redis;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--port" && i + 1 < argc)
      port = std::atoi(argv[++i]);
    else if (a == "--bind" && i + 1 < argc)
      bind = argv[++i];
    else if (a == "--token" && i + 1 < argc)
      token = argv[++i];
    else if (a == "--redis" && i + 1 < argc)
      redis = argv[++i];
    else {
      std::fprintf(stderr,
                   "usage: %s [--port N] [--bind ADDR] [--token T] [--redis "
                   "HOST:PORT]\n",
                   argv[0]);
      return 2;
    }
  }
  std::signal(SIGPIPE, SIG_IGN);

  // An existing server: a base, an evhtp, its own routes.
  Server s;
  s.base = event_base_new();
  s.htp = evhtp_new(s.base, nullptr);
  timeval idle{30, 0};  // bounds slow requests; evsse lifts it on streams
  evhtp_set_timeouts(s.htp, &idle, &idle);
  evhtp_set_gencb(s.htp, OnIndex, nullptr);
  std::string addr = (bind.find(':') == bind.npos ? "ipv4:" : "ipv6:") + bind;
  if (evhtp_bind_socket(s.htp, addr.c_str(), port, 128) != 0) {
    std::fprintf(stderr, "evhtp_hello: cannot listen on %s:%d\n", bind.c_str(),
                 port);
    return 1;
  }

  // evsse: a Hub on the same base, two endpoints.
  evsse::HubOptions hub_options;
  hub_options.log = [](evsse::LogLevel, std::string_view m) {
    std::fprintf(stderr, "evsse: %.*s\n", int(m.size()), m.data());
  };
  auto hub = evsse::Hub::Create(s.base, hub_options);
  if (!hub.ok()) {
    std::fprintf(stderr, "evhtp_hello: %s\n", hub.status().ToString().c_str());
    return 1;
  }
  s.hub = hub->get();
  // Optional: several nodes on one Redis behave as one.
  std::unique_ptr<evsse::redis::Link> link;
  if (!redis.empty()) {
    evsse::redis::RedisOptions ro;
    ro.address = redis;
    auto attached = evsse::redis::Attach(s.hub, ro);
    if (!attached.ok()) {
      std::fprintf(stderr, "%s: --redis: %s\n", argv[0],
                   attached.status().ToString().c_str());
      return 2;
    }
    link = std::move(attached).value();
  }
  evsse::PublishOptions publish;
  publish.bearer_token = token;
  publish.allow_unauthenticated = token.empty();
  evsse::Status st = evsse::evhtp::Mount(s.htp, "/events", s.hub);
  if (st.ok())
    st = evsse::evhtp::MountPublish(s.htp, "/publish", s.hub, publish);
  if (!st.ok()) {
    std::fprintf(stderr, "evhtp_hello: %s\n", st.ToString().c_str());
    return 1;
  }

  event* signals[] = {evsignal_new(s.base, SIGINT, OnSignal, &s),
                      evsignal_new(s.base, SIGTERM, OnSignal, &s)};
  for (event* e : signals) event_add(e, nullptr);
  std::fprintf(stderr, "evhtp_hello: listening on http://%s:%d\n", bind.c_str(),
               port);
  event_base_dispatch(s.base);

  for (event* e : signals) event_free(e);
  link.reset();  // the Redis link goes before the Hub
  hub->reset();  // the streams have ended: nothing reaches it any more
  evhtp_free(s.htp);
  event_base_free(s.base);
  return 0;
}
