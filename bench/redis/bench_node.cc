// evsse-bench-node: the server side of the Redis benchmarks. It is
// examples/evhttp_hello with the knobs a benchmark needs and the example
// does not expose: the history length (which is also the Redis stream's
// MAXLEN), the connection limit, and a GET /stats route with the Hub's
// counters. SIGTERM or SIGINT stop it at once (no drain: nothing to hand
// over in a benchmark).
//
//   evsse-bench-node --port N [--bind 127.0.0.1] [--redis HOST:PORT|unix:PATH]
//                    [--redis-cluster HOST:PORT[,HOST:PORT...]]
//                    [--kafka HOST:PORT[,HOST:PORT...]] [--kafka-set K=V]...
//                    [--history N] [--max-connections N]
//                    [--tls-cert FILE --tls-key FILE]
//
// Without --redis, --redis-cluster or --kafka it runs on the in-process
// broker (memory mode). --redis-cluster (as evhttp_hello's) attaches to a
// Redis Cluster through any of the seed nodes; it excludes --redis.
// --kafka (when evsse::kafka is built) serves Kafka topics instead.
// --tls-cert and --tls-key serve HTTPS (evsse::evhttp::ServeTls, as
// evhttp_hello), for the TLS scenarios of bench/compare.sh.
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <evsse/evhttp.h>
#include <evsse/hub.h>
#include <evsse/pubsub/address.h>
#include <evsse/redis.h>
#ifdef EVSSE_HAVE_KAFKA
#include <evsse/kafka.h>
#endif
#include <sys/resource.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace {

struct Node {
  event_base* base = nullptr;
  evsse::Hub* hub = nullptr;
};

void OnStats(evhttp_request* req, void* arg) {
  const evsse::HubStats s = static_cast<Node*>(arg)->hub->stats();
  evbuffer* body = evbuffer_new();
  evbuffer_add_printf(
      body,
      "{\"connections_active\":%llu,\"events_published\":%llu,"
      "\"events_delivered\":%llu,\"publish_errors\":%llu,\"replays\":%llu,"
      "\"replayed_events\":%llu,\"gaps\":%llu,\"slow_consumer_closes\":%llu,"
      "\"backend_up\":%s,\"backend_reconnects\":%llu,"
      "\"backend_backfilled_events\":%llu,\"backend_replay_fetches\":%llu,"
      "\"replay_page_requests\":%llu,\"replay_pages_shared\":%llu}\n",
      static_cast<unsigned long long>(s.connections_active),
      static_cast<unsigned long long>(s.events_published),
      static_cast<unsigned long long>(s.events_delivered),
      static_cast<unsigned long long>(s.publish_errors),
      static_cast<unsigned long long>(s.replays),
      static_cast<unsigned long long>(s.replayed_events),
      static_cast<unsigned long long>(s.gaps),
      static_cast<unsigned long long>(s.slow_consumer_closes),
      s.backend.up ? "true" : "false",
      static_cast<unsigned long long>(s.backend.reconnects),
      static_cast<unsigned long long>(s.backend.backfilled_events),
      static_cast<unsigned long long>(s.backend.replay_fetches),
      static_cast<unsigned long long>(s.replay_page_requests),
      static_cast<unsigned long long>(s.replay_pages_shared));
  evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
                    "application/json");
  evhttp_send_reply(req, 200, "OK", body);
  evbuffer_free(body);
}

void OnSignal(evutil_socket_t, short, void* arg) {
  event_base_loopbreak(static_cast<Node*>(arg)->base);
}

}  // namespace

int main(int argc, char** argv) {
  int port = 0;
  std::string bind = "127.0.0.1", redis, cluster, kafka;
  std::vector<std::pair<std::string, std::string>> kafka_settings;
  size_t history = 1000, max_connections = 10000;
  evsse::TlsOptions tls;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (i + 1 >= argc) a = "?";
    if (a == "--port") {
      port = std::atoi(argv[++i]);
    } else if (a == "--bind") {
      bind = argv[++i];
    } else if (a == "--redis") {
      redis = argv[++i];
    } else if (a == "--redis-cluster") {
      cluster = argv[++i];
    } else if (a == "--kafka") {
      kafka = argv[++i];
    } else if (a == "--kafka-set") {
      std::string kv = argv[++i];
      size_t eq = kv.find('=');
      kafka_settings.emplace_back(
          kv.substr(0, eq), eq == std::string::npos ? "" : kv.substr(eq + 1));
    } else if (a == "--history") {
      history = std::strtoull(argv[++i], nullptr, 10);
    } else if (a == "--max-connections") {
      max_connections = std::strtoull(argv[++i], nullptr, 10);
    } else if (a == "--tls-cert") {
      tls.certificate_file = argv[++i];
    } else if (a == "--tls-key") {
      tls.key_file = argv[++i];
    } else {
      std::fprintf(stderr,
                   "usage: %s --port N [--bind ADDR] [--redis ADDR | "
                   "--redis-cluster HOST:PORT[,HOST:PORT...]] [--history N] "
                   "[--max-connections N] "
                   "[--tls-cert FILE --tls-key FILE]\n",
                   argv[0]);
      return 2;
    }
  }
  if (!redis.empty() && !cluster.empty()) {
    std::fprintf(stderr,
                 "evsse-bench-node: --redis and --redis-cluster exclude each "
                 "other\n");
    return 2;
  }
  std::vector<std::string> cluster_seeds;
  if (!cluster.empty()) {
    auto seeds = evsse::pubsub::ParseClusterSeeds(cluster);
    if (!seeds.ok()) {
      std::fprintf(stderr, "evsse-bench-node: --redis-cluster: %s\n",
                   seeds.status().message().c_str());
      return 2;
    }
    cluster_seeds = std::move(seeds).value();
  }
  std::signal(SIGPIPE, SIG_IGN);
  rlimit r{};
  if (getrlimit(RLIMIT_NOFILE, &r) == 0) {
    r.rlim_cur = r.rlim_max;
    setrlimit(RLIMIT_NOFILE, &r);
  }

  Node node;
  node.base = event_base_new();
  evhttp* http = evhttp_new(node.base);
  if (!tls.certificate_file.empty() || !tls.key_file.empty()) {
    evsse::Status st = evsse::evhttp::ServeTls(http, tls);
    if (!st.ok()) {
      std::fprintf(stderr, "evsse-bench-node: %s\n", st.message().c_str());
      return 2;
    }
  }
  if (evhttp_bind_socket_with_handle(http, bind.c_str(), port) == nullptr) {
    std::fprintf(stderr, "evsse-bench-node: cannot listen on %s:%d\n",
                 bind.c_str(), port);
    return 1;
  }
  evsse::HubOptions ho;
  ho.history_max_events = history;
  ho.max_connections = max_connections;
  ho.log = [](evsse::LogLevel, std::string_view m) {
    std::fprintf(stderr, "evsse: %.*s\n", int(m.size()), m.data());
  };
  auto hub = evsse::Hub::Create(node.base, ho);
  if (!hub.ok()) {
    std::fprintf(stderr, "evsse-bench-node: %s\n",
                 hub.status().ToString().c_str());
    return 1;
  }
  node.hub = hub->get();
  std::unique_ptr<evsse::redis::Link> link;
  if (!redis.empty() || !cluster_seeds.empty()) {
    evsse::redis::RedisOptions ro;
    if (!redis.empty()) ro.address = redis;
    ro.cluster_seeds = std::move(cluster_seeds);
    auto attached = evsse::redis::Attach(node.hub, ro);
    if (!attached.ok()) {
      std::fprintf(stderr, "evsse-bench-node: %s: %s\n",
                   cluster.empty() ? "--redis" : "--redis-cluster",
                   attached.status().ToString().c_str());
      return 2;
    }
    link = std::move(attached).value();
  }
#ifdef EVSSE_HAVE_KAFKA
  std::unique_ptr<evsse::kafka::Link> kafka_link;
  if (!kafka.empty()) {
    evsse::kafka::KafkaOptions ko;
    ko.settings = kafka_settings;
    for (size_t at = 0; at <= kafka.size();) {
      size_t comma = kafka.find(',', at);
      if (comma == std::string::npos) comma = kafka.size();
      ko.brokers.push_back(kafka.substr(at, comma - at));
      at = comma + 1;
    }
    auto attached = evsse::kafka::Attach(node.hub, ko);
    if (!attached.ok()) {
      std::fprintf(stderr, "evsse-bench-node: --kafka: %s\n",
                   attached.status().ToString().c_str());
      return 2;
    }
    kafka_link = std::move(attached).value();
  }
#else
  if (!kafka.empty()) {
    std::fprintf(stderr, "evsse-bench-node: --kafka: not built\n");
    return 2;
  }
#endif
  evsse::PublishOptions po;
  po.allow_unauthenticated = true;  // loopback benchmarks only
  // Mounted for the server's life (Release).
  evsse::Status st = evsse::evhttp::Mount(http, "/events", node.hub).Release();
  if (st.ok())
    st = evsse::evhttp::MountPublish(http, "/publish", node.hub, po).Release();
  if (!st.ok()) {
    std::fprintf(stderr, "evsse-bench-node: %s\n", st.ToString().c_str());
    return 1;
  }
  evhttp_set_cb(http, "/stats", OnStats, &node);

  event* sigint = evsignal_new(node.base, SIGINT, OnSignal, &node);
  event* sigterm = evsignal_new(node.base, SIGTERM, OnSignal, &node);
  event_add(sigint, nullptr);
  event_add(sigterm, nullptr);
  event_base_dispatch(node.base);

  event_free(sigint);
  event_free(sigterm);
  evhttp_free(http);
  link.reset();
#ifdef EVSSE_HAVE_KAFKA
  kafka_link.reset();
#endif
  hub->reset();
  event_base_free(node.base);
  return 0;
}
