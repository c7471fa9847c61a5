// SIGHUP: re-read the configuration file. What the application owns changes
// at once (publish token, subscriber auth and its tokens, alert limits,
// dedup window, recent list size, request timeout, shutdown deadline, log
// level of the application's own lines). What evsse copied when the Hub and
// its endpoints were created cannot change without a restart (the public API
// has no setter for HubOptions or StreamOptions): listen, hub limits,
// endpoints and their stream options, redis; a change there is logged and
// ignored until the next start. With `listen ... ssl;`, the certificate
// and key (and the other ssl_* settings) are read again on every SIGHUP,
// whether or not the file names other ones: new connections get them, open
// streams keep theirs. A file that does not load, or a certificate or key
// that does not, changes nothing.
#include <evsse/evhttp.h>

#include "app.h"

namespace alerts {

void Reload(App& app) {
  std::string token;
  auto loaded = LoadConfig(app, &token);
  if (!loaded.ok()) {
    ++app.counters.reloads_failed;
    Log(evsse::LogLevel::kError, "reload failed; the running config stays",
        {{"config", app.config_path}, {"error", loaded.status().message()}});
    return;
  }
  Config next = std::move(*loaded);
  // TLS first: it is the one part that can still fail. Turning TLS on or
  // off needs a restart (listen); then the running settings are read again.
  if (app.config.listen.ssl) {
    const evsse::conf::ServerConfig& tls_from =
        next.listen.ssl ? next : app.config;
    evsse::Status s = evsse::evhttp::ServeTls(app.http, tls_from.tls);
    if (!s.ok()) {
      ++app.counters.reloads_failed;
      Log(evsse::LogLevel::kError, "reload failed; the running config stays",
          {{"config", app.config_path},
           {"error", tls_from.tls_where + ": " + s.message()}});
      return;
    }
    if (!next.listen.ssl) {
      next.tls = app.config.tls;
      next.ssl_protocols = app.config.ssl_protocols;
      next.tls_where = app.config.tls_where;
    }
  }
  Json before = ConfigSummary(app.config), after = ConfigSummary(next);
  // log_level filters the application's lines (and the library's, which it
  // prints) at once; only lines below the level the Hub started with stay
  // unformatted by the library until a restart.
  before["hub"].erase("log_level");
  after["hub"].erase("log_level");
  std::string restart;
  for (const char* part : {"listen", "hub", "endpoints", "redis", "kafka"}) {
    if (before[part] == after[part]) continue;
    restart += (restart.empty() ? "" : ",") + std::string(part);
  }
  // A new Redis password does not show in the summary (it is a secret).
  if (app.config.redis && next.redis &&
      app.config.redis->password != next.redis->password)
    restart += (restart.empty() ? "" : ",") + std::string("redis.password");
  std::string live;
  for (const char* part :
       {"alerts", "request_timeout_ms", "shutdown_timeout_ms"}) {
    if (before[part] != after[part])
      live += (live.empty() ? "" : ",") + std::string(part);
  }
  if (token != app.publish_token)
    live += (live.empty() ? "" : ",") + std::string("publish_token");
  if (app.config.listen.ssl)  // re-read even when the paths are the same
    live += (live.empty() ? "" : ",") + std::string("tls");
  if (app.config.alerts.subscriber_tokens != next.alerts.subscriber_tokens)
    live += (live.empty() ? "" : ",") + std::string("subscriber_tokens");

  // Keep what needs a restart; take the rest.
  next.listen = app.config.listen;
  evsse::LogLevel level = next.hub.log_level;
  next.hub = app.config.hub;
  next.hub.log_level = level;
  next.endpoints = app.config.endpoints;
  next.redis = app.config.redis;
  next.kafka = app.config.kafka;
  app.config = std::move(next);
  app.publish_token = token;
  ApplyLive(app);
  ++app.counters.reloads_ok;
  Log(evsse::LogLevel::kInfo, "reloaded",
      {{"config", app.config_path}, {"changed", live.empty() ? "none" : live}});
  if (!restart.empty())
    Log(evsse::LogLevel::kWarning,
        "reload: these settings need a restart and keep their running values",
        {{"changed", restart}});
}

}  // namespace alerts
