// evhttp_hello: the smallest embedding of evsse into an existing libevent
// evhttp server, on the in-process broker.
//
//   evhttp_hello [--port N] [--bind ADDR] [--token SECRET] [--redis HOST:PORT]
//                [--redis-sentinel NAME@HOST:PORT[,HOST:PORT...]]
//                [--redis-cluster HOST:PORT[,HOST:PORT...]]
//                [--redis-wait-replicas N] [--kafka HOST:PORT[,HOST:PORT...]]
//                [--cors-origin ORIGIN]... [--max-topics N]
//                [--history-max-age SECONDS] [--history-max-bytes N]
//                [--tls-cert FILE --tls-key FILE]
//
// With --redis, several of them on one Redis form one multi-node service:
// publish on any node, receive and resume on every node. With
// --redis-sentinel instead, the primary is found through Redis Sentinel and
// followed through failovers. With --redis-cluster (any nodes of a Redis
// Cluster, comma-separated), topics are spread over the cluster's shards
// (sharded pub/sub) and followed through failovers and slot migrations.
//
// With --kafka, it serves Kafka topics (evsse::kafka): topic NAME@P is
// partition P of the Kafka topic NAME (NAME alone: every partition), ids are
// partition and offset, and publishes produce to Kafka:
//
//   kcat -P -b 127.0.0.1:9092 -t news -p 0 -H sse-event=note <<< 'hello'
//   curl -N 'http://127.0.0.1:8080/events?topic=news@0&topic=news@1'
//
//   curl -N 'http://127.0.0.1:8080/events?topic=news'
//   curl -X POST --data 'hello' 'http://127.0.0.1:8080/publish?topic=news'
//
// Without --token the publish endpoint is open, so the server binds to
// 127.0.0.1 unless --bind says otherwise. --cors-origin (repeatable) lets
// pages of that origin (scheme://host[:port]) open the stream. With
// --tls-cert and --tls-key (PEM: the chain, leaf first, and its key) every
// connection is HTTPS:
//
//   curl --cacert ca.pem -N 'https://localhost:8443/events?topic=news'
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <evsse/evhttp.h>
#include <evsse/hub.h>
#include <evsse/redis.h>
#ifdef EVSSE_HAVE_KAFKA
#include <evsse/kafka.h>
#endif

#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "common/redis_flags.h"

namespace {

struct Server {
  event_base* base = nullptr;
  evhttp* http = nullptr;
  evsse::Hub* hub = nullptr;
};

// The application's own route, untouched by evsse.
void OnIndex(evhttp_request* req, void*) {
  evbuffer* body = evbuffer_new();
  evbuffer_add_printf(body,
                      "evhttp_hello: GET /events?topic=T, "
                      "POST /publish?topic=T\n");
  evhttp_send_reply(req, 200, "OK", body);
  evbuffer_free(body);
}

// SIGINT/SIGTERM: drain the streams (spread over 5 s), then stop.
void OnSignal(evutil_socket_t, short, void* arg) {
  auto* s = static_cast<Server*>(arg);
  std::fprintf(stderr, "evhttp_hello: draining\n");
  s->hub->Shutdown(std::chrono::seconds(5), [s] {
    // Give the last bytes (retry hint, end of stream) time to leave before
    // main frees the server.
    timeval grace{0, 500 * 1000};
    event_base_loopexit(s->base, &grace);
  });
}

}  // namespace

int main(int argc, char** argv) {
  int port = 8080;
  std::string bind = "127.0.0.1", token, kafka;
  evsse::TlsOptions tls;
  evsse_examples::RedisFlags rf;  // --redis, --redis-sentinel, ...
  evsse::HubOptions hub_options;
  evsse::StreamOptions stream;
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
    } else if (a == "--kafka" && i + 1 < argc)
      kafka = argv[++i];
    else if (a == "--cors-origin" && i + 1 < argc)
      stream.cors_origins.push_back(argv[++i]);
    else if (a == "--tls-cert" && i + 1 < argc)
      tls.certificate_file = argv[++i];
    else if (a == "--tls-key" && i + 1 < argc)
      tls.key_file = argv[++i];
    else if (a == "--max-topics" && i + 1 < argc)
      hub_options.max_topics = std::strtoull(argv[++i], nullptr, 10);
    else if (a == "--history-max-bytes" && i + 1 < argc)
      hub_options.history_max_bytes = std::strtoull(argv[++i], nullptr, 10);
    else if (a == "--history-max-age" && i + 1 < argc)
      hub_options.history_max_age =
          std::chrono::seconds(std::strtoll(argv[++i], nullptr, 10));
    else {
      std::fprintf(stderr,
                   "usage: %s [--port N] [--bind ADDR] [--token SECRET] "
                   "[--redis HOST:PORT | --redis-sentinel "
                   "NAME@HOST:PORT[,HOST:PORT...] | --redis-cluster "
                   "HOST:PORT[,HOST:PORT...]] [--redis-wait-replicas N] "
                   "[--kafka HOST:PORT[,HOST:PORT...]] "
                   "[--cors-origin ORIGIN]... "
                   "[--max-topics N] [--history-max-age SECONDS] "
                   "[--history-max-bytes N] [--tls-cert FILE --tls-key FILE]\n",
                   argv[0]);
      return 2;
    }
  }
  if (rf.Stores() > 1) {
    std::fprintf(stderr,
                 "%s: --redis, --redis-sentinel and --redis-cluster are "
                 "mutually exclusive\n",
                 argv[0]);
    return 2;
  }
  if (rf.Any() && !kafka.empty()) {
    std::fprintf(stderr,
                 "%s: --redis (or --redis-sentinel, --redis-cluster) and "
                 "--kafka: a Hub has "
                 "one store\n",
                 argv[0]);
    return 2;
  }
#ifndef EVSSE_HAVE_KAFKA
  if (!kafka.empty()) {
    std::fprintf(stderr,
                 "%s: --kafka: this build has no Kafka support "
                 "(evsse::kafka was not built)\n",
                 argv[0]);
    return 2;
  }
#endif
  const bool https = !tls.certificate_file.empty() || !tls.key_file.empty();
  std::signal(SIGPIPE, SIG_IGN);

  // An existing server: a base, an evhttp, its own routes.
  Server s;
  s.base = event_base_new();
  s.http = evhttp_new(s.base);
  evhttp_set_timeout(s.http, 30);  // bounds slow request headers
  evhttp_set_cb(s.http, "/", OnIndex, nullptr);
  if (https) {
    evsse::Status st = evsse::evhttp::ServeTls(s.http, tls);
    if (!st.ok()) {
      std::fprintf(stderr, "evhttp_hello: %s\n", st.message().c_str());
      return 2;
    }
  }
  if (!evhttp_bind_socket_with_handle(s.http, bind.c_str(), port)) {
    std::fprintf(stderr, "evhttp_hello: cannot listen on %s:%d\n", bind.c_str(),
                 port);
    return 1;
  }

  // evsse: a Hub on the same base, two endpoints.
  hub_options.log = [](evsse::LogLevel, std::string_view m) {
    std::fprintf(stderr, "evsse: %.*s\n", int(m.size()), m.data());
  };
  auto hub = evsse::Hub::Create(s.base, hub_options);
  if (!hub.ok()) {
    std::fprintf(stderr, "evhttp_hello: %s\n", hub.status().ToString().c_str());
    return 1;
  }
  s.hub = hub->get();
  // Optional: several nodes on one Redis behave as one.
  std::unique_ptr<evsse::redis::Link> link;
  if (rf.Any()) {
    evsse::redis::RedisOptions ro;
    if (!evsse_examples::ToRedisOptions(argv[0], rf, &ro)) return 2;
    auto attached = evsse::redis::Attach(s.hub, ro);
    if (!attached.ok()) {
      std::fprintf(stderr, "%s: --redis: %s\n", argv[0],
                   attached.status().ToString().c_str());
      return 2;
    }
    link = std::move(attached).value();
  }
#ifdef EVSSE_HAVE_KAFKA
  // Optional: serve Kafka topics.
  std::unique_ptr<evsse::kafka::Link> kafka_link;
  if (!kafka.empty()) {
    evsse::kafka::KafkaOptions ko;
    for (size_t at = 0; at <= kafka.size();) {
      size_t comma = kafka.find(',', at);
      if (comma == std::string::npos) comma = kafka.size();
      ko.brokers.push_back(kafka.substr(at, comma - at));
      at = comma + 1;
    }
    auto attached = evsse::kafka::Attach(s.hub, ko);
    if (!attached.ok()) {
      std::fprintf(stderr, "%s: --kafka: %s\n", argv[0],
                   attached.status().ToString().c_str());
      return 2;
    }
    kafka_link = std::move(attached).value();
  }
#endif
  evsse::PublishOptions publish;
  publish.bearer_token = token;
  publish.allow_unauthenticated = token.empty();
  // The mount handles keep the paths; they go first at the end.
  evsse::Mounted events =
      evsse::evhttp::Mount(s.http, "/events", s.hub, stream);
  evsse::Mounted publisher;
  if (events.ok())
    publisher = evsse::evhttp::MountPublish(s.http, "/publish", s.hub, publish);
  if (!events.ok() || !publisher.ok()) {
    const evsse::Status& st =
        events.ok() ? publisher.status() : events.status();
    std::fprintf(stderr, "evhttp_hello: %s\n", st.ToString().c_str());
    return 1;
  }

  event* sigint = evsignal_new(s.base, SIGINT, OnSignal, &s);
  event* sigterm = evsignal_new(s.base, SIGTERM, OnSignal, &s);
  event_add(sigint, nullptr);
  event_add(sigterm, nullptr);
  std::fprintf(stderr, "evhttp_hello: listening on %s://%s:%d\n",
               https ? "https" : "http", bind.c_str(), port);
  event_base_dispatch(s.base);

  // Reverse order of creation: signals, mounts, links, Hub, server, base.
  event_free(sigint);
  event_free(sigterm);
  publisher.Unmount();
  events.Unmount();
#ifdef EVSSE_HAVE_KAFKA
  kafka_link.reset();
#endif
  link.reset();
  hub->reset();
  if (s.http) evhttp_free(s.http);
  event_base_free(s.base);
  return 0;
}
