// evsse-alerts: an alert-notification server on evsse (public headers only).
//
//   evsse-alerts --config FILE [--listen HOST:PORT] [--redis HOST:PORT]
//                [--redis-sentinel NAME@HOST:PORT[,HOST:PORT...]]
//                [--redis-cluster HOST:PORT[,HOST:PORT...]]
//                [--redis-wait-replicas N] [--kafka HOST:PORT[,HOST:PORT...]]
//                [--check]
//
//   POST /alerts {"severity","title","body","team"[,"dedup_key"]}
//                                 with Authorization: Bearer <token>
//   GET  /alerts/stream?topic=T   the live alerts of team T (event type =
//                                 severity; resume with Last-Event-ID)
//   GET  /alerts/recent?topic=T   the last alerts of T as JSON
//   GET  /metrics, /status, /     Prometheus text, JSON, a small web page
//
// SIGTERM/SIGINT drain the streams, then exit 0. SIGHUP reloads the file
// (and, with `listen ... ssl;`, the certificate and key for new
// connections).
#include <event2/event.h>
#include <event2/http.h>
#include <evsse/evhttp.h>
#include <evsse/pubsub/address.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "app.h"

namespace alerts {
namespace {

constexpr const char* kBuiltIn[] = {"/", "/app.js", "/alerts",
                                    "/alerts/recent"};

struct Signals {
  App* app;
  event* term = nullptr;
  event* intr = nullptr;
  event* hup = nullptr;
};

// Finish stops the loop; Run then frees the server (before the Hub).
// Hub::Shutdown's `done` fires when the last stream was ended, which is
// when its final bytes (a retry hint, the last chunk) were queued, not sent:
// freeing the server at once would cut them. So the listener closes now
// and the loop runs a short grace period for the queued bytes to leave.
void Finish(App& app, bool graceful) {
  if (app.bound) evhttp_del_accept_socket(app.http, app.bound);
  app.bound = nullptr;
  timeval grace{0, graceful ? 300000 : 0};
  event_base_loopexit(app.base, &grace);
}

void OnSignal(evutil_socket_t sig, short, void* arg) {
  App& app = *static_cast<Signals*>(arg)->app;
  if (sig == SIGHUP) return Reload(app);
  if (app.draining) {
    Log(evsse::LogLevel::kWarning, "second signal: exiting now");
    return Finish(app, false);
  }
  app.draining = true;
  Log(evsse::LogLevel::kInfo, "draining",
      {{"signal", sig == SIGTERM ? "TERM" : "INT"},
       {"deadline_ms", std::to_string(app.config.shutdown_timeout.count())},
       {"streams", std::to_string(app.hub->stats().connections_active)}});
  App* a = &app;
  app.hub->Shutdown(app.config.shutdown_timeout, [a] {
    Log(evsse::LogLevel::kInfo, "drained");
    Finish(*a, true);
  });
}

int Usage(const char* argv0) {
  std::fprintf(
      stderr,
      "usage: %s --config FILE [--listen HOST:PORT] "
      "[--redis HOST:PORT] [--redis-sentinel NAME@HOST:PORT[,HOST:PORT...]] "
      "[--redis-cluster HOST:PORT[,HOST:PORT...]] "
      "[--redis-wait-replicas N] [--kafka HOST:PORT[,HOST:PORT...]] "
      "[--check]\n",
      argv0);
  return 2;
}

// Check refuses configurations this application cannot serve.
evsse::Status Check(const Config& c, const std::string& token) {
  if (token.empty())
    return evsse::FailedPreconditionError(
        "no publish token: set publish_token in the config or the "
        "ALERTS_TOKEN environment variable");
  if (token.size() < 16)
    return evsse::FailedPreconditionError(
        "the publish token is shorter than 16 characters: use a long random "
        "one (e.g. head -c 24 /dev/urandom | base64)");
  for (char c : token)
    if (c <= ' ' || c >= 0x7f)
      return evsse::FailedPreconditionError(
          "the publish token holds spaces or non-ASCII bytes");
  bool stream = false;
  for (const evsse::conf::Endpoint& e : c.endpoints) {
    stream |= e.kind == evsse::conf::EndpointKind::kSubscribe;
    for (const char* p : kBuiltIn)
      if (e.path == p)
        return evsse::FailedPreconditionError(
            e.where + ": endpoint path " + e.path +
            " is one of the alert server's own routes");
  }
  if (!stream)
    return evsse::FailedPreconditionError(
        "the config needs an `endpoint subscribe PATH { }` block (the alert "
        "stream, e.g. /alerts/stream)");
#ifndef EVSSE_HAVE_REDIS
  if (c.redis)
    return evsse::FailedPreconditionError(
        "this build has no Redis support (evsse::redis was not built): remove "
        "the redis block and --redis");
#endif
#ifndef EVSSE_HAVE_KAFKA
  if (c.kafka)
    return evsse::FailedPreconditionError(
        "this build has no Kafka support (evsse::kafka was not built): remove "
        "the kafka block and --kafka");
#endif
#ifdef EVSSE_HAVE_KAFKA
  // What Attach would refuse (a librdkafka setting it does not know), so
  // that --check refuses it too.
  if (c.kafka)
    if (evsse::Status s = evsse::kafka::Validate(*c.kafka); !s.ok())
      return evsse::FailedPreconditionError("kafka block: " + s.message());
#endif
  if (c.redis && c.kafka)
    return evsse::FailedPreconditionError(
        "a redis block (or --redis) and a kafka block (or --kafka): the "
        "server has one store, choose one");
  return evsse::Status::Ok();
}

evsse::Status Mount(App& app) {
  for (const evsse::conf::Endpoint& e : app.config.endpoints) {
    evsse::Status s;
    switch (e.kind) {
      case evsse::conf::EndpointKind::kSubscribe:
      case evsse::conf::EndpointKind::kPoll: {
        evsse::StreamOptions so = e.stream;
        so.auth = StreamAuth(&app);
        if (e.kind == evsse::conf::EndpointKind::kPoll) so.poll_enabled = true;
        app.mounts.push_back(
            evsse::evhttp::Mount(app.http, e.path.c_str(), app.hub.get(), so));
        s = app.mounts.back().status();
        if (app.stream_path.empty() &&
            e.kind == evsse::conf::EndpointKind::kSubscribe)
          app.stream_path = e.path;
        break;
      }
      case evsse::conf::EndpointKind::kPublish:
        app.mounts.push_back(evsse::evhttp::MountPublish(
            app.http, e.path.c_str(), app.hub.get(), e.publish));
        s = app.mounts.back().status();
        break;
      case evsse::conf::EndpointKind::kMetrics:
        if (evhttp_set_cb(app.http, e.path.c_str(), OnMetrics, &app) != 0)
          s = evsse::FailedPreconditionError("path already in use");
        break;
      case evsse::conf::EndpointKind::kStatus:
        if (evhttp_set_cb(app.http, e.path.c_str(), OnStatus, &app) != 0)
          s = evsse::FailedPreconditionError("path already in use");
        break;
    }
    if (!s.ok())
      return evsse::Status(
          s.code(), e.where + ": endpoint " + e.path + ": " + s.message());
  }
  evhttp_set_cb(app.http, "/alerts", OnPostAlert, &app);
  evhttp_set_cb(app.http, "/alerts/recent", OnRecent, &app);
  evhttp_set_cb(app.http, "/", OnPage, &app);
  evhttp_set_cb(app.http, "/app.js", OnScript, &app);
  evhttp_set_gencb(app.http, OnNotFound, &app);
  return evsse::Status::Ok();
}

std::string BoundAddress(evhttp_bound_socket* bound, const std::string& host) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  getsockname(evhttp_bound_socket_get_fd(bound),
              reinterpret_cast<sockaddr*>(&ss), &len);
  int port = ss.ss_family == AF_INET6
                 ? ntohs(reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port)
                 : ntohs(reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
  bool v6 = host.find(':') != std::string::npos;
  return (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

int Run(App& app) {
  app.base = event_base_new();
  app.http = evhttp_new(app.base);
  evhttp_set_max_headers_size(app.http, 32 << 10);
  ApplyLive(app);
  const evsse::conf::HostPort& l = app.config.listen;
  app.bound = evhttp_bind_socket_with_handle(app.http, l.host.c_str(), l.port);
  if (!app.bound) {
    Log(evsse::LogLevel::kError, "cannot listen",
        {{"addr", l.host + ":" + std::to_string(l.port)},
         {"error", std::strerror(errno)}});
    return 1;
  }
  app.listen_address = BoundAddress(app.bound, l.host);
  if (l.ssl) {
    evsse::Status s = evsse::evhttp::ServeTls(app.http, app.config.tls);
    if (!s.ok()) {
      Log(evsse::LogLevel::kError, "cannot serve TLS",
          {{"error", app.config.tls_where + ": " + s.message()}});
      return 1;
    }
  }

  evsse::HubOptions ho = app.config.hub;
  ho.log = [](evsse::LogLevel level, std::string_view m) {
    Log(level, "evsse", {{"text", std::string(m)}});
  };
  auto hub = evsse::Hub::Create(app.base, ho);
  if (!hub.ok()) {
    Log(evsse::LogLevel::kError, "cannot create the hub",
        {{"error", hub.status().ToString()}});
    return 1;
  }
  app.hub = std::move(*hub);
#ifdef EVSSE_HAVE_REDIS
  if (app.config.redis) {
    auto link = evsse::redis::Attach(app.hub.get(), *app.config.redis);
    if (!link.ok()) {
      Log(evsse::LogLevel::kError, "cannot attach Redis",
          {{"error", link.status().ToString()}});
      return 1;
    }
    app.redis_link = std::move(*link);
  }
#endif
#ifdef EVSSE_HAVE_KAFKA
  // Teams are bare topics: each is the whole Kafka topic of its name, every
  // partition of it (evsse/kafka.h); the auth hook sees the team names.
  if (app.config.kafka) {
    auto link = evsse::kafka::Attach(app.hub.get(), *app.config.kafka);
    if (!link.ok()) {
      Log(evsse::LogLevel::kError, "cannot attach Kafka",
          {{"error", link.status().ToString()}});
      return 1;
    }
    app.kafka_link = std::move(*link);
  }
#endif
  if (evsse::Status s = Mount(app); !s.ok()) {
    Log(evsse::LogLevel::kError, "cannot mount", {{"error", s.ToString()}});
    return 1;
  }

  Signals sig{&app};
  sig.term = evsignal_new(app.base, SIGTERM, OnSignal, &sig);
  sig.intr = evsignal_new(app.base, SIGINT, OnSignal, &sig);
  sig.hup = evsignal_new(app.base, SIGHUP, OnSignal, &sig);
  for (event* e : {sig.term, sig.intr, sig.hup}) event_add(e, nullptr);
  Log(evsse::LogLevel::kInfo, "listening",
      {{"addr", app.listen_address},
       {"tls", l.ssl ? "on" : "off"},
       {"stream", app.stream_path},
       {"config", app.config_path},
       {"redis", !app.config.redis ? std::string("off")
                 : !app.config.redis->cluster_seeds.empty()
                     ? "cluster " + app.config.redis->cluster_seeds[0]
                 : app.config.redis->sentinels.empty()
                     ? app.config.redis->address
                     : "sentinel " + app.config.redis->sentinel_master},
       {"kafka", app.config.kafka ? app.config.kafka->brokers[0] : "off"}});
  event_base_dispatch(app.base);

  // Reverse order of creation: signals, mounts, links, Hub, server, base.
  for (event* e : {sig.term, sig.intr, sig.hup}) event_free(e);
  app.mounts.clear();
#ifdef EVSSE_HAVE_KAFKA
  app.kafka_link.reset();
#endif
  app.redis_link.reset();
  app.hub.reset();
  if (app.http) evhttp_free(app.http);
  app.http = nullptr;
  event_base_free(app.base);
  Log(evsse::LogLevel::kInfo, "exit");
  return 0;
}

}  // namespace

evsse::Result<Config> LoadConfig(const App& app, std::string* token) {
  auto c = LoadConfigFile(app.config_path);
  if (!c.ok()) return c.status();
  if (!app.listen_flag.empty()) {
    auto hp = evsse::conf::ParseHostPort(app.listen_flag);
    if (!hp.ok())
      return evsse::InvalidArgumentError("--listen: " + hp.status().message());
    hp->ssl = c->listen.ssl;  // the file says whether it is TLS
    c->listen = *hp;
  }
  if (!app.redis_flag.empty()) {
    if (evsse::Status s = evsse::conf::ValidateRedisAddress(app.redis_flag);
        !s.ok())
      return evsse::InvalidArgumentError("--redis: " + s.message());
    if (!c->redis) c->redis.emplace();
    c->redis->address = app.redis_flag;
    c->redis->cluster_seeds.clear();
  }
  if (!app.sentinel_flag.empty()) {
    auto spec = evsse::pubsub::ParseSentinelSpec(app.sentinel_flag);
    if (!spec.ok())
      return evsse::InvalidArgumentError("--redis-sentinel: " +
                                         spec.status().message());
    if (!c->redis) c->redis.emplace();
    c->redis->sentinel_master = spec->master;
    c->redis->sentinels = spec->sentinels;
    c->redis->cluster_seeds.clear();
  }
  if (!app.cluster_flag.empty()) {
    if (!app.redis_flag.empty() || !app.sentinel_flag.empty())
      return evsse::InvalidArgumentError(
          "--redis-cluster: not with --redis or --redis-sentinel");
    auto seeds = evsse::pubsub::ParseClusterSeeds(app.cluster_flag);
    if (!seeds.ok())
      return evsse::InvalidArgumentError("--redis-cluster: " +
                                         seeds.status().message());
    if (!c->redis) c->redis.emplace();
    // The flag replaces the file's way to Redis.
    c->redis->sentinel_master.clear();
    c->redis->sentinels.clear();
    c->redis->database = 0;
    c->redis->cluster_seeds = std::move(seeds).value();
  }
  if (!app.wait_replicas_flag.empty()) {
    auto n = evsse::conf::ParseCount(app.wait_replicas_flag);
    if (!n.ok() || *n > 64)
      return evsse::InvalidArgumentError(
          "--redis-wait-replicas: expected 0..64, got \"" +
          app.wait_replicas_flag + "\"");
    if (!c->redis)
      return evsse::InvalidArgumentError(
          "--redis-wait-replicas needs a redis block or --redis");
    c->redis->wait_replicas = static_cast<int>(*n);
  }
  if (!app.kafka_flag.empty()) {
    std::vector<std::string> brokers;
    for (size_t at = 0; at <= app.kafka_flag.size();) {
      size_t comma = app.kafka_flag.find(',', at);
      if (comma == std::string::npos) comma = app.kafka_flag.size();
      std::string b = app.kafka_flag.substr(at, comma - at);
      size_t colon = b.rfind(':');
      if (colon == std::string::npos || colon == 0 || colon + 1 == b.size() ||
          b.find_first_not_of("0123456789", colon + 1) != std::string::npos)
        return evsse::InvalidArgumentError("--kafka: \"" + b +
                                           "\" is not HOST:PORT");
      brokers.push_back(b);
      at = comma + 1;
    }
    if (!c->kafka) c->kafka.emplace();
    c->kafka->brokers = std::move(brokers);
  }
  const char* env = std::getenv("ALERTS_TOKEN");
  *token = !c->alerts.publish_token.empty() ? c->alerts.publish_token
                                            : (env ? env : "");
  if (evsse::Status s = Check(*c, *token); !s.ok()) return s;
  return c;
}

void ApplyLive(App& app) {
  const Config& c = app.config;
  SetLogLevel(c.hub.log_level);
  int64_t ms = c.request_timeout.count();
  timeval tv{static_cast<time_t>(ms / 1000),
             static_cast<suseconds_t>((ms % 1000) * 1000)};
  evhttp_set_timeout_tv(app.http, &tv);
  // libevent refuses larger bodies itself (413, no JSON); just above our
  // own limit, so that the application's JSON 413 is what clients see.
  size_t body = c.alerts.max_alert_bytes;
  for (const evsse::conf::Endpoint& e : c.endpoints)
    if (e.kind == evsse::conf::EndpointKind::kPublish)
      body = std::max(body, e.publish.max_body_bytes);
  evhttp_set_max_body_size(app.http, static_cast<ev_ssize_t>(body + 65536));
  app.recent.Configure(c.alerts.recent_alerts, c.hub.max_topics);
  app.dedup.set_capacity(c.alerts.max_dedup_keys);
}

}  // namespace alerts

int main(int argc, char** argv) {
  alerts::App app;
  bool check = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--config" && i + 1 < argc)
      app.config_path = argv[++i];
    else if (a == "--listen" && i + 1 < argc)
      app.listen_flag = argv[++i];
    else if (a == "--redis" && i + 1 < argc)
      app.redis_flag = argv[++i];
    else if (a == "--redis-sentinel" && i + 1 < argc)
      app.sentinel_flag = argv[++i];
    else if (a == "--redis-cluster" && i + 1 < argc)
      app.cluster_flag = argv[++i];
    else if (a == "--redis-wait-replicas" && i + 1 < argc)
      app.wait_replicas_flag = argv[++i];
    else if (a == "--kafka" && i + 1 < argc)
      app.kafka_flag = argv[++i];
    else if (a == "--check")
      check = true;
    else
      return alerts::Usage(argv[0]);
  }
  if (app.config_path.empty()) return alerts::Usage(argv[0]);
  auto config = alerts::LoadConfig(app, &app.publish_token);
  if (!config.ok()) {
    std::fprintf(stderr, "evsse-alerts: %s\n",
                 config.status().message().c_str());
    return 1;
  }
  app.config = std::move(*config);
  if (check) {
    // The certificate and key are loaded too, as a start would.
    if (app.config.listen.ssl) {
      event_base* base = event_base_new();
      evhttp* http = evhttp_new(base);
      evsse::Status s = evsse::evhttp::ServeTls(http, app.config.tls);
      evhttp_free(http);
      event_base_free(base);
      if (!s.ok()) {
        std::fprintf(stderr, "evsse-alerts: %s: %s\n",
                     app.config.tls_where.c_str(), s.message().c_str());
        return 1;
      }
    }
    std::fprintf(stderr, "evsse-alerts: %s: ok\n", app.config_path.c_str());
    return 0;
  }
  std::signal(SIGPIPE, SIG_IGN);
  app.started_unix_ms = alerts::NowUnixMs();
  return alerts::Run(app);
}
