// GET /metrics (Prometheus text format 0.0.4) and GET /status (JSON), both
// from Hub::stats() and the application's counters. No secret appears in
// either: tokens and passwords are reported as set or not.
#include <event2/http.h>

#include <chrono>
#include <cstdio>

#include "app.h"

namespace alerts {
namespace {

class Prometheus {
 public:
  void Metric(const char* name, const char* type, const char* help,
              uint64_t value) {
    Head(name, type, help);
    Sample(name, "", value);
  }
  void Head(const char* name, const char* type, const char* help) {
    out_ += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name +
            " " + type + "\n";
  }
  void Sample(const char* name, const std::string& labels, uint64_t value) {
    out_ += name;
    if (!labels.empty()) out_ += "{" + labels + "}";
    out_ += " " + std::to_string(value) + "\n";
  }
  void Gauge(const char* name, const char* help, double value) {
    Head(name, "gauge", help);
    char text[32];
    std::snprintf(text, sizeof(text), "%.6f", value);
    out_ += std::string(name) + " " + text + "\n";
  }
  const std::string& text() const { return out_; }

 private:
  std::string out_;
};

bool Method(evhttp_request* req, const RequestInfo& info) {
  enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
  if (cmd == EVHTTP_REQ_GET || cmd == EVHTTP_REQ_HEAD) return true;
  ReplyError(req, info, 405, "use GET", {{"Allow", "GET, HEAD"}});
  return false;
}

// RedisUp: the link delivers (connected, every followed topic synced, the
// subscription answering its probes), not merely connected.
bool RedisUp(const App& app) {
  return app.redis_link && app.redis_link->stats().delivering;
}

double Seconds(std::chrono::microseconds d) { return d.count() / 1e6; }

Json Millis(evsse::Millis d) { return d.count(); }

}  // namespace

void OnMetrics(evhttp_request* req, void* arg) {
  App& app = *static_cast<App*>(arg);
  RequestInfo info = Describe(req);
  if (!Method(req, info)) return;
  evsse::HubStats s = app.hub->stats();
  Prometheus p;
  p.Metric("evsse_connections_active", "gauge", "Open event streams.",
           s.connections_active);
  p.Metric("evsse_connections_total", "counter", "Event streams started.",
           s.connections_total);
  p.Metric("evsse_connections_shed_total", "counter",
           "Stream requests refused by a limit or while draining.",
           s.connections_shed);
  p.Metric("evsse_requests_rejected_total", "counter",
           "Stream requests answered with a 4xx.", s.requests_rejected);
  p.Metric("evsse_events_published_total", "counter",
           "Events accepted by the hub.", s.events_published);
  p.Metric("evsse_events_delivered_total", "counter",
           "Event writes to subscribers.", s.events_delivered);
  p.Metric("evsse_publish_errors_total", "counter",
           "Publishes that failed after being accepted.", s.publish_errors);
  p.Metric("evsse_replays_total", "counter",
           "Connections that resumed from a Last-Event-ID.", s.replays);
  p.Metric("evsse_replayed_events_total", "counter",
           "Events sent from history to resuming clients.", s.replayed_events);
  p.Metric("evsse_gaps_total", "counter",
           "Gap events sent (cursor older than history or unknown).", s.gaps);
  p.Metric("evsse_slow_consumer_closes_total", "counter",
           "Streams closed for falling out of the history while held back "
           "at max_queued_bytes.",
           s.slow_consumer_closes);
  p.Metric("evsse_stall_closes_total", "counter",
           "Streams closed by write_stall_timeout (queued output did not "
           "drain: the client stopped reading).",
           s.stall_closes);
  p.Metric("evsse_lifetime_closes_total", "counter",
           "Streams ended by max_lifetime.", s.lifetime_closes);
  p.Metric("evsse_heartbeats_total", "counter", "Heartbeat comments sent.",
           s.heartbeats);
  p.Metric("evsse_polls_total", "counter", "transport=poll requests answered.",
           s.polls);
  p.Metric("evsse_topics", "gauge", "Topics known to the hub.", s.topics);
  p.Metric("evsse_history_events", "gauge", "Events retained for resume.",
           s.history_events);
  p.Metric("evsse_history_bytes", "gauge",
           "Memory held by history, as counted against history_max_bytes.",
           s.history_bytes);
  p.Metric("evsse_topics_evicted_total", "counter",
           "Topics evicted whole for history_max_bytes or max_topics.",
           s.topics_evicted);
  p.Metric("evsse_history_events_evicted_total", "counter",
           "History events evicted for history_max_bytes or max_topics.",
           s.history_events_evicted);
  p.Metric("evsse_history_events_expired_total", "counter",
           "History events dropped by history_max_age.",
           s.history_events_expired);
  p.Metric("evsse_redis_up", "gauge",
           "1 when the Redis link delivers; 0 when down, resyncing after a "
           "missed probe or a reconnect, or not configured.",
           RedisUp(app) ? 1 : 0);
  if (app.redis_link) {
    evsse::redis::LinkStats r = app.redis_link->stats();
    p.Metric("evsse_redis_reconnects_total", "counter",
             "Reconnections of the Redis link.", r.reconnects);
    p.Metric("evsse_redis_backfilled_events_total", "counter",
             "Events back-filled from Redis streams after a reconnect.",
             r.backfilled_events);
    p.Metric("evsse_redis_publish_errors_total", "counter",
             "Publishes Redis refused or could not take.", r.publish_errors);
    p.Gauge("evsse_redis_delivery_lag_seconds",
            "Round trip of the last subscription probe (PUBLISH to arrival).",
            Seconds(r.delivery_lag));
    p.Metric("evsse_redis_probes_total", "counter", "Subscription probes sent.",
             r.probes_sent);
    p.Metric("evsse_redis_probes_missed_total", "counter",
             "Subscription probes not answered in time (each a resync).",
             r.probes_missed);
  }
#ifdef EVSSE_HAVE_KAFKA
  if (app.kafka_link) {
    evsse::kafka::LinkStats k = app.kafka_link->stats();
    p.Metric("evsse_kafka_up", "gauge",
             "1 when the Kafka cluster answers; 0 when no broker does.",
             k.up ? 1 : 0);
    p.Metric("evsse_kafka_records_skipped_total", "counter",
             "Kafka records not streamed: data not UTF-8, or a bad type.",
             k.records_skipped);
    p.Metric("evsse_kafka_publish_errors_total", "counter",
             "Publishes Kafka did not acknowledge.", k.publish_errors);
    p.Metric("evsse_kafka_replay_fetches_total", "counter",
             "Replay reads from Kafka for resuming clients.", k.replay_fetches);
  }
#endif
  p.Head("evsse_alerts_published_total", "counter",
         "Alerts published, by severity.");
  for (const char* sev : {"info", "warning", "critical"}) {
    auto it = app.counters.published.find(sev);
    p.Sample("evsse_alerts_published_total",
             std::string("severity=\"") + sev + "\"",
             it == app.counters.published.end() ? 0 : it->second);
  }
  p.Metric("evsse_alerts_deduplicated_total", "counter",
           "Alerts answered with an earlier id (same team and dedup_key).",
           app.counters.deduplicated);
  p.Head("evsse_alerts_rejected_total", "counter",
         "POST /alerts answered with an error, by status.");
  for (int code : {400, 401, 405, 413, 415, 503, 504}) {
    auto it = app.counters.rejected.find(code);
    p.Sample("evsse_alerts_rejected_total",
             "code=\"" + std::to_string(code) + "\"",
             it == app.counters.rejected.end() ? 0 : it->second);
  }
  p.Metric("evsse_recent_alerts", "gauge",
           "Alerts kept for GET /alerts/recent.", app.recent.size());
  p.Metric("evsse_dedup_keys", "gauge", "Dedup keys remembered.",
           app.dedup.size());
  p.Head("evsse_config_reloads_total", "counter", "SIGHUP reloads, by result.");
  p.Sample("evsse_config_reloads_total", "result=\"ok\"",
           app.counters.reloads_ok);
  p.Sample("evsse_config_reloads_total", "result=\"error\"",
           app.counters.reloads_failed);
  p.Metric("evsse_draining", "gauge", "1 while shutting down.",
           app.draining ? 1 : 0);
  p.Metric("process_start_time_seconds", "gauge",
           "Start time of the process since the Unix epoch, in seconds.",
           static_cast<uint64_t>(app.started_unix_ms / 1000));
  Reply(req, info, 200, "text/plain; version=0.0.4; charset=utf-8", p.text());
}

Json ConfigSummary(const Config& c) {
  Json j;
  j["listen"] = c.listen.host + ":" + std::to_string(c.listen.port) +
                (c.listen.ssl ? " ssl" : "");
  if (c.listen.ssl)
    j["tls"] = {{"certificate", c.tls.certificate_file},
                {"key", c.tls.key_file},
                {"protocols", c.ssl_protocols},
                {"ciphers", c.tls.ciphers},
                {"curves", c.tls.curves},
                {"client_ca", c.tls.client_ca_file}};
  j["request_timeout_ms"] = Millis(c.request_timeout);
  j["shutdown_timeout_ms"] = Millis(c.shutdown_timeout);
  const evsse::HubOptions& h = c.hub;
  j["hub"] = {{"history_max_events", h.history_max_events},
              {"history_max_age_ms", Millis(h.history_max_age)},
              {"history_max_bytes", h.history_max_bytes},
              {"max_connections", h.max_connections},
              {"max_subscribers_per_topic", h.max_subscribers_per_topic},
              {"max_topics", h.max_topics},
              {"max_event_bytes", h.max_event_bytes},
              {"max_topic_length", h.max_topic_length},
              {"log_level", static_cast<int>(h.log_level)}};
  Json eps = Json::array();
  for (const evsse::conf::Endpoint& e : c.endpoints) {
    Json ej = {{"kind", evsse::conf::EndpointKindName(e.kind)},
               {"path", e.path}};
    const evsse::StreamOptions& s = e.stream;
    if (e.kind == evsse::conf::EndpointKind::kSubscribe ||
        e.kind == evsse::conf::EndpointKind::kPoll) {
      ej["heartbeat_ms"] = Millis(s.heartbeat);
      ej["retry_ms"] = Millis(s.retry);
      ej["retry_jitter_ms"] = Millis(s.retry_jitter);
      ej["write_stall_timeout_ms"] = Millis(s.write_stall_timeout);
      ej["dead_peer_timeout_ms"] = Millis(s.dead_peer_timeout);
      ej["max_lifetime_ms"] = Millis(s.max_lifetime);
      ej["lifetime_jitter_ms"] = Millis(s.lifetime_jitter);
      ej["max_queued_bytes"] = s.max_queued_bytes;
      ej["replay_batch_bytes"] = s.replay_batch_bytes;
      ej["padding_bytes"] = s.padding_bytes;
      ej["max_topics_per_connection"] = s.max_topics_per_connection;
      ej["poll"] = s.poll_enabled;
      ej["poll_timeout_ms"] = Millis(s.poll_timeout);
      ej["poll_max_events"] = s.poll_max_events;
      ej["gap_event"] = s.gap_event;
      ej["cors_origins"] = s.cors_origins;
      ej["cors_credentials"] = s.cors_credentials;
      ej["cors_max_age_ms"] = Millis(s.cors_max_age);
    }
    if (e.kind == evsse::conf::EndpointKind::kPublish) {
      ej["max_body_bytes"] = e.publish.max_body_bytes;
      ej["bearer_token_set"] = !e.publish.bearer_token.empty();
      ej["allow_unauthenticated"] = e.publish.allow_unauthenticated;
    }
    eps.push_back(ej);
  }
  j["endpoints"] = eps;
  if (c.redis) {
    const evsse::redis::RedisOptions& r = *c.redis;
    j["redis"] = {{"address", r.address},
                  {"username_set", !r.username.empty()},
                  {"password_set", !r.password.empty()},
                  {"database", r.database},
                  {"key_prefix", r.key_prefix},
                  {"max_events", r.max_events},
                  {"max_age_ms", Millis(r.max_age)},
                  {"stream_ttl_ms", Millis(r.stream_ttl)},
                  {"connect_timeout_ms", Millis(r.connect_timeout)},
                  {"command_timeout_ms", Millis(r.command_timeout)},
                  {"reconnect_min_ms", Millis(r.reconnect_min)},
                  {"reconnect_max_ms", Millis(r.reconnect_max)},
                  {"probe_interval_ms", Millis(r.probe_interval)},
                  {"probe_timeout_ms", Millis(r.probe_timeout)},
                  {"tcp_user_timeout_ms", Millis(r.tcp_user_timeout)},
                  {"wait_replicas", r.wait_replicas},
                  {"wait_timeout_ms", Millis(r.wait_timeout)}};
  } else {
    j["redis"] = nullptr;
  }
  if (c.kafka) {
    const evsse::kafka::KafkaOptions& k = *c.kafka;
    Json keys = Json::array();  // the pass-through settings' names only
    for (const auto& kv : k.settings) keys.push_back(kv.first);
    j["kafka"] = {{"brokers", k.brokers},
                  {"event_header", k.event_header},
                  {"client_id", k.client_id},
                  {"publish_timeout_ms", Millis(k.publish_timeout)},
                  {"fetch_timeout_ms", Millis(k.fetch_timeout)},
                  {"metadata_refresh_ms", Millis(k.metadata_refresh)},
                  {"librdkafka", keys}};
  } else {
    j["kafka"] = nullptr;
  }
  const AlertOptions& a = c.alerts;
  j["alerts"] = {{"publish_token_set", !a.publish_token.empty()},
                 {"subscriber_auth", a.subscriber_auth},
                 {"subscriber_tokens", a.subscriber_tokens.size()},
                 {"max_alert_bytes", a.max_alert_bytes},
                 {"max_title_length", a.max_title_length},
                 {"max_body_length", a.max_body_length},
                 {"max_team_length", a.max_team_length},
                 {"max_dedup_key_length", a.max_dedup_key_length},
                 {"dedup_window_ms", Millis(a.dedup_window)},
                 {"max_dedup_keys", a.max_dedup_keys},
                 {"recent_alerts", a.recent_alerts}};
  return j;
}

void OnStatus(evhttp_request* req, void* arg) {
  App& app = *static_cast<App*>(arg);
  RequestInfo info = Describe(req);
  if (!Method(req, info)) return;
  evsse::HubStats s = app.hub->stats();
  Json j;
  j["status"] = app.draining ? "draining" : "ok";
  j["listen"] = app.listen_address;
  j["uptime_seconds"] = (NowUnixMs() - app.started_unix_ms) / 1000;
  j["stats"] = {{"connections_active", s.connections_active},
                {"connections_total", s.connections_total},
                {"connections_shed", s.connections_shed},
                {"requests_rejected", s.requests_rejected},
                {"events_published", s.events_published},
                {"events_delivered", s.events_delivered},
                {"publish_errors", s.publish_errors},
                {"replays", s.replays},
                {"replayed_events", s.replayed_events},
                {"gaps", s.gaps},
                {"slow_consumer_closes", s.slow_consumer_closes},
                {"stall_closes", s.stall_closes},
                {"lifetime_closes", s.lifetime_closes},
                {"heartbeats", s.heartbeats},
                {"polls", s.polls},
                {"topics", s.topics},
                {"history_events", s.history_events},
                {"history_bytes", s.history_bytes},
                {"topics_evicted", s.topics_evicted},
                {"history_events_evicted", s.history_events_evicted},
                {"history_events_expired", s.history_events_expired}};
  Json published = Json::object();
  for (auto& [sev, n] : app.counters.published) published[sev] = n;
  j["alerts"] = {{"published", published},
                 {"deduplicated", app.counters.deduplicated},
                 {"recent", app.recent.size()}};
  if (app.redis_link) {
    evsse::redis::LinkStats r = app.redis_link->stats();
    // up: delivering (what evsse_redis_up says); connected: both
    // connections up, possibly still back-filling.
    j["redis"] = {
        {"up", r.delivering},
        {"connected", r.up},
        {"delivery_lag_seconds", Seconds(r.delivery_lag)},
        {"last_probe_age_seconds", r.last_probe_age.count() < 0
                                       ? Json(nullptr)
                                       : Json(r.last_probe_age.count() / 1e3)},
        {"probes_sent", r.probes_sent},
        {"probes_missed", r.probes_missed},
        {"reconnects", r.reconnects},
        {"backfilled_events", r.backfilled_events},
        // Sentinel or Cluster: the primary (primaries) in use, and how
        // often it moved.
        {"primary", r.primary},
        {"failovers", r.failovers},
        {"last_error", r.last_error}};
  } else {
    j["redis"] = nullptr;
  }
  j["config"] = ConfigSummary(app.config);
  ReplyJson(req, info, 200, j);
}

}  // namespace alerts
