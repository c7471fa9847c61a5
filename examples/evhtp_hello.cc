// evhtp_hello: the smallest embedding of evsse into an existing libevhtp
// server, on the in-process broker.
//
//   evhtp_hello [--port N] [--bind ADDR] [--token SECRET]
//               [--redis HOST:PORT | --redis-sentinel NAME@HOST:PORT[,...]
//                | --redis-cluster HOST:PORT[,...]]
//               [--redis-wait-replicas N] | --threads N]
//               [--tls-cert FILE --tls-key FILE]
//
// With --redis, several of them on one Redis form one multi-node service:
// publish on any node, receive and resume on every node. With --threads N
// (N >= 1; 0, the default, is one loop), libevhtp serves the connections on
// N worker loops (evhtp_use_threads_wexit) with one Hub per loop, all on
// one shared bus: an event published on any loop reaches every subscriber.
// --redis (and --redis-sentinel, the primary found through Redis Sentinel
// and followed through failovers) works with one loop only.
//
//   curl -N 'http://127.0.0.1:8080/events?topic=news'
//   curl -X POST --data 'hello' 'http://127.0.0.1:8080/publish?topic=news'
//
// Without --token the publish endpoint is open, so the server binds to
// 127.0.0.1 unless --bind says otherwise. With --tls-cert and --tls-key
// (PEM: the chain, leaf first, and its key) every connection is HTTPS:
//
//   curl --cacert ca.pem -N 'https://localhost:8443/events?topic=news'
#include <event2/buffer.h>
#include <event2/event.h>
#include <evhtp/evhtp.h>
#include <evhtp/thread.h>
#include <evsse/evhtp.h>
#include <evsse/hub.h>
#include <evsse/pubsub/bus.h>
#include <evsse/redis.h>

#include <atomic>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "common/redis_flags.h"

namespace {

struct Server {
  event_base* base = nullptr;
  evhtp_t* htp = nullptr;
  std::shared_ptr<evsse::pubsub::Bus> bus;  // --threads: shared by the Hubs
  std::mutex mu;                            // guards hubs and workers
  std::map<event_base*, std::unique_ptr<evsse::Hub>> hubs;  // one per loop
  std::vector<evthr_t*> workers;
  size_t draining = 0;  // worker Hubs told to drain (main loop)
  std::atomic<size_t> drained{0};
  event* tick = nullptr;

  // AddHub makes the Hub of loop `b`, on b's thread.
  evsse::Status AddHub(event_base* b) {
    evsse::HubOptions o;
    o.log = [](evsse::LogLevel, std::string_view m) {
      std::fprintf(stderr, "evsse: %.*s\n", int(m.size()), m.data());
    };
    o.bus = bus;
    auto hub = evsse::Hub::Create(b, o);
    if (!hub.ok()) return hub.status();
    std::lock_guard<std::mutex> lock(mu);
    hubs[b] = std::move(hub).value();
    return evsse::Status::Ok();
  }
  evsse::Hub* For(event_base* b) {
    std::lock_guard<std::mutex> lock(mu);
    auto it = hubs.find(b);
    return it == hubs.end() ? nullptr : it->second.get();
  }
  void DropHub(event_base* b) {  // on b's thread; ~Hub runs unlocked
    std::unique_lock<std::mutex> lock(mu);
    auto node = hubs.extract(b);
    lock.unlock();
  }
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

// --threads: each worker makes its Hub on its own loop and destroys it there.
void OnWorkerInit(evhtp_t*, evthr_t* thr, void* arg) {
  auto* s = static_cast<Server*>(arg);
  evsse::Status st = s->AddHub(evthr_get_base(thr));
  if (!st.ok())
    std::fprintf(stderr, "evhtp_hello: %s\n", st.ToString().c_str());
  std::lock_guard<std::mutex> lock(s->mu);
  s->workers.push_back(thr);
}
void OnWorkerExit(evhtp_t*, evthr_t* thr, void* arg) {
  static_cast<Server*>(arg)->DropHub(evthr_get_base(thr));
}

// The streams have ended: stop listening, let the last bytes (final retry
// hints) go out, then stop. libevhtp 1.2.18's evhtp_free does not close
// connections, so the streams must end first.
void Stop(Server* s) {
  evhtp_unbind_socket(s->htp);
  timeval flush{0, 500000};
  event_base_loopexit(s->base, &flush);
}
void OnDrainWorker(evthr_t* thr, void* arg, void*) {  // on the worker thread
  auto* s = static_cast<Server*>(arg);
  evsse::Hub* hub = s->For(evthr_get_base(thr));
  if (!hub) return void(++s->drained);
  hub->Shutdown(std::chrono::seconds(5), [s] { ++s->drained; });
}
void OnTick(evutil_socket_t, short, void* arg) {  // main loop, every 50 ms
  auto* s = static_cast<Server*>(arg);
  if (s->drained.load() < s->draining) return;
  event_del(s->tick);
  Stop(s);
}

// SIGINT/SIGTERM: drain the streams (spread over 5 s), then stop. Each
// worker Hub drains on its own thread (evthr_defer); the main loop polls.
void OnSignal(evutil_socket_t, short, void* arg) {
  auto* s = static_cast<Server*>(arg);
  std::fprintf(stderr, "evhtp_hello: draining\n");
  if (!s->tick)
    return s->For(s->base)->Shutdown(std::chrono::seconds(5), [s] { Stop(s); });
  std::lock_guard<std::mutex> lock(s->mu);
  if (s->draining) return;  // already draining
  for (evthr_t* thr : s->workers) evthr_defer(thr, &OnDrainWorker, s);
  s->draining = s->workers.size();
  timeval every{0, 50000};
  event_add(s->tick, &every);
}

}  // namespace

int main(int argc, char** argv) {
  int port = 8080, threads = 0;
  std::string bind = "127.0.0.1", token;
  evsse_examples::RedisFlags rf;  // --redis, --redis-sentinel, ...
  evsse::TlsOptions tls;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--port" && i + 1 < argc)
      port = std::atoi(argv[++i]);
    else if (a == "--bind" && i + 1 < argc)
      bind = argv[++i];
    else if (a == "--token" && i + 1 < argc)
      token = argv[++i];
    else if (rf.Take(argc, argv, &i)) {
      // --redis, --redis-sentinel, --redis-cluster, --redis-wait-replicas
    } else if (a == "--threads" && i + 1 < argc)
      threads = std::atoi(argv[++i]);
    else if (a == "--tls-cert" && i + 1 < argc)
      tls.certificate_file = argv[++i];
    else if (a == "--tls-key" && i + 1 < argc)
      tls.key_file = argv[++i];
    else
      threads = -1;
    const int stores = rf.Stores();
    if (threads < 0 || stores > 1 || (threads > 0 && stores > 0)) {
      std::fprintf(stderr,
                   "usage: %s [--port N] [--bind ADDR] [--token T]\n"
                   "          [--redis HOST:PORT | --redis-sentinel "
                   "NAME@HOST:PORT[,HOST:PORT...]\n"
                   "           | --redis-cluster HOST:PORT[,HOST:PORT...]]\n"
                   "          [--redis-wait-replicas N] | --threads N]\n"
                   "          [--tls-cert FILE --tls-key FILE]\n"
                   "--threads N: N worker loops, 0 (default) for one loop; "
                   "--redis needs one loop\n",
                   argv[0]);
      return 2;
    }
  }
  const bool https = !tls.certificate_file.empty() || !tls.key_file.empty();
  std::signal(SIGPIPE, SIG_IGN);

  // An existing server: a base, an evhtp, its own routes.
  Server s;
  s.base = event_base_new();
  s.htp = evhtp_new(s.base, nullptr);
  timeval idle{30, 0};  // bounds slow requests; evsse lifts it on streams
  evhtp_set_timeouts(s.htp, &idle, &idle);
  evhtp_set_gencb(s.htp, OnIndex, nullptr);
  if (https) {
    evsse::Status st = evsse::evhtp::ServeTls(s.htp, tls);
    if (!st.ok()) {
      std::fprintf(stderr, "evhtp_hello: %s\n", st.message().c_str());
      return 2;
    }
  }
  std::string addr = (bind.find(':') == bind.npos ? "ipv4:" : "ipv6:") + bind;
  if (evhtp_bind_socket(s.htp, addr.c_str(), port, 128) != 0) {
    std::fprintf(stderr, "evhtp_hello: cannot listen on %s:%d\n", bind.c_str(),
                 port);
    return 1;
  }

  // evsse: a Hub on the same base, or one per worker loop; two endpoints.
  evsse::PublishOptions publish;
  publish.bearer_token = token;
  publish.allow_unauthenticated = token.empty();
  std::unique_ptr<evsse::redis::Link> link;
  evsse::Status st;
  evsse::Mounted events, publisher;  // the mount handles, gone first at the end
  if (threads == 0 && (st = s.AddHub(s.base)).ok()) {
    evsse::Hub* hub = s.For(s.base);
    // Several nodes on one Redis behave as one.
    if (rf.Any()) {
      evsse::redis::RedisOptions ro;
      if (!evsse_examples::ToRedisOptions(argv[0], rf, &ro)) return 2;
      auto attached = evsse::redis::Attach(hub, ro);
      if (!attached.ok()) {
        std::fprintf(stderr, "%s: --redis: %s\n", argv[0],
                     attached.status().ToString().c_str());
        return 2;
      }
      link = std::move(attached).value();
    }
    events = evsse::evhtp::Mount(s.htp, "/events", hub);
    if (events.ok())
      publisher = evsse::evhtp::MountPublish(s.htp, "/publish", hub, publish);
    st = events.ok() ? publisher.status() : events.status();
  } else if (threads > 0) {  // each request: the Hub of its connection's loop
    s.bus = std::make_shared<evsse::pubsub::Bus>();
    auto lookup = [&s](event_base* b) { return s.For(b); };
    events = evsse::evhtp::MountWorkers(s.htp, "/events", lookup);
    if (events.ok())
      publisher =
          evsse::evhtp::MountPublishWorkers(s.htp, "/publish", lookup, publish);
    st = events.ok() ? publisher.status() : events.status();
    if (st.ok() && evhtp_use_threads_wexit(s.htp, OnWorkerInit, OnWorkerExit,
                                           threads, &s) != 0)
      st = evsse::InternalError("evhtp_use_threads_wexit failed");
    s.tick = event_new(s.base, -1, EV_PERSIST, OnTick, &s);
  }
  if (!st.ok()) {
    std::fprintf(stderr, "evhtp_hello: %s\n", st.ToString().c_str());
    return 1;
  }

  event* signals[] = {evsignal_new(s.base, SIGINT, OnSignal, &s),
                      evsignal_new(s.base, SIGTERM, OnSignal, &s)};
  for (event* e : signals) event_add(e, nullptr);
  std::fprintf(stderr, "evhtp_hello: listening on %s://%s:%d\n",
               https ? "https" : "http", bind.c_str(), port);
  event_base_dispatch(s.base);

  // Reverse order of creation: signals, mounts, the Redis link, the Hubs,
  // the server, the base.
  for (event* e : signals) event_free(e);
  if (s.tick) event_free(s.tick);
  publisher.Unmount();
  events.Unmount();
  link.reset();
  s.DropHub(s.base);  // the streams have ended: nothing reaches it any more
  evhtp_free(s.htp);  // stops the workers: OnWorkerExit drops their Hubs
  event_base_free(s.base);
  return 0;
}
