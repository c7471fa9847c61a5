// POST /alerts (validate, authenticate, deduplicate, publish, answer the id)
// and GET /alerts/recent.
#include <event2/http.h>

#include <cstdlib>

#include "app.h"

namespace alerts {
namespace {

// Reject answers a refused alert and counts it.
void Reject(
    App& app, evhttp_request* req, const RequestInfo& info, int status,
    const std::string& message,
    std::initializer_list<std::pair<const char*, std::string>> headers = {}) {
  ++app.counters.rejected[status];
  ReplyError(req, info, status, message, headers);
}

Json IdJson(const std::string& id, bool duplicate) {
  Json j;
  j["id"] = id;
  if (duplicate) j["duplicate"] = true;
  return j;
}

int StatusFor(const evsse::Status& s) {
  switch (s.code()) {
    case evsse::StatusCode::kInvalidArgument:
      return 400;
    case evsse::StatusCode::kOutOfRange:
      return 413;
    case evsse::StatusCode::kUnknown:
      return 504;  // Redis may have stored it: do not retry blindly
    default:
      return 503;  // closed hub, Redis down, too many topics
  }
}

void Publish(App& app, evhttp_request* req, const RequestInfo& info,
             const Alert& alert) {
  const AlertOptions& opts = app.config.alerts;
  std::string key;
  if (!alert.dedup_key.empty() && opts.dedup_window.count() > 0) {
    key = alert.team + '\n' + alert.dedup_key;
    if (Dedup::Entry* e = app.dedup.Find(key, NowUnixMs())) {
      ++app.counters.deduplicated;
      if (!e->id.empty()) return ReplyJson(req, info, 200, IdJson(e->id, true));
      // The first one is still in flight: answer with its outcome.
      e->waiters.push_back(std::make_shared<PendingReply>(req, info));
      return;
    }
    app.dedup.Start(key);
  }
  Json data = AlertData(alert, NowIso());
  auto pending = std::make_shared<PendingReply>(req, info);
  App* a = &app;
  evsse::Status s = app.hub->Publish(
      alert.team, {alert.severity, data.dump()},
      [a, pending, key, data, alert](evsse::Result<std::string> id) {
        std::vector<std::shared_ptr<PendingReply>> waiters;
        if (!key.empty())
          if (Dedup::Entry* e = a->dedup.Find(key, NowUnixMs()))
            waiters.swap(e->waiters);
        if (!id.ok()) {
          if (!key.empty()) a->dedup.Erase(key);
          Log(evsse::LogLevel::kWarning, "publish failed",
              {{"team", alert.team}, {"error", id.status().ToString()}});
          // kUnknown (the store may have taken it) is a 504 with its own
          // message: a blind retry could publish the alert twice.
          int status = StatusFor(id.status());
          std::string message =
              (status == 504 ? "outcome unknown: " : "not published: ") +
              id.status().message();
          ++a->counters.rejected[status];
          pending->Error(status, message);
          for (auto& w : waiters) w->Error(status, message);
          return;
        }
        ++a->counters.published[alert.severity];
        a->recent.Add(alert.team, *id, data);
        if (!key.empty())
          a->dedup.Finish(key, *id, NowUnixMs(),
                          a->config.alerts.dedup_window.count());
        pending->Json(200, IdJson(*id, false));
        for (auto& w : waiters) w->Json(200, IdJson(*id, true));
      });
  if (!s.ok()) {
    // Refused at once: the callback will never run.
    if (!key.empty()) app.dedup.Erase(key);
    int status = StatusFor(s);
    ++app.counters.rejected[status];
    pending->Error(status, s.message());
  }
}

}  // namespace

void OnPostAlert(evhttp_request* req, void* arg) {
  App& app = *static_cast<App*>(arg);
  RequestInfo info = Describe(req);
  try {
    if (evhttp_request_get_command(req) != EVHTTP_REQ_POST)
      return Reject(app, req, info, 405, "use POST", {{"Allow", "POST"}});
    evkeyvalq* in = evhttp_request_get_input_headers(req);
    if (!CheckPublisher(app, evhttp_find_header(in, "Authorization")))
      return Reject(app, req, info, 401,
                    "missing or invalid Authorization: Bearer <token>",
                    {{"WWW-Authenticate", "Bearer realm=\"alerts\""}});
    if (!IsJsonContentType(evhttp_find_header(in, "Content-Type")))
      return Reject(app, req, info, 415,
                    "Content-Type must be application/json");
    std::string body = Body(req);
    size_t limit = app.config.alerts.max_alert_bytes;
    if (body.size() > limit)
      return Reject(app, req, info, 413,
                    "body is " + std::to_string(body.size()) +
                        " bytes; the limit is " + std::to_string(limit));
    auto alert = ParseAlert(body, app.config.alerts);
    if (!alert.ok())
      return Reject(app, req, info, 400, alert.status().message());
    Publish(app, req, info, *alert);
  } catch (const std::exception& e) {
    // Nothing may escape into libevent.
    Log(evsse::LogLevel::kError, "internal error", {{"error", e.what()}});
    ReplyError(req, info, 500, "internal error");
  }
}

void OnRecent(evhttp_request* req, void* arg) {
  App& app = *static_cast<App*>(arg);
  RequestInfo info = Describe(req);
  try {
    enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
    if (cmd != EVHTTP_REQ_GET && cmd != EVHTTP_REQ_HEAD)
      return ReplyError(req, info, 405, "use GET", {{"Allow", "GET, HEAD"}});
    Params params;
    if (!Query(req, &params))
      return ReplyError(req, info, 400, "malformed query string");
    std::vector<std::string> teams = Values(params, "topic");
    if (teams.empty())
      return ReplyError(req, info, 400, "missing topic parameter (a team)");
    if (teams.size() > 8)
      return ReplyError(req, info, 400, "at most 8 topic parameters");
    for (const std::string& t : teams)
      if (evsse::Status s = ValidateTeam(t, app.config.alerts.max_team_length);
          !s.ok())
        return ReplyError(req, info, 400, "topic: " + s.message());
    size_t max = app.config.alerts.recent_alerts, limit = max;
    std::vector<std::string> limits = Values(params, "limit");
    if (limits.size() > 1)
      return ReplyError(req, info, 400, "limit given more than once");
    if (!limits.empty()) {
      const std::string& l = limits[0];
      char* end = nullptr;
      unsigned long v = std::strtoul(l.c_str(), &end, 10);
      if (l.empty() || *end || l[0] == '-' || l.size() > 6 || v == 0 || v > max)
        return ReplyError(req, info, 400,
                          "limit must be 1.." + std::to_string(max));
      limit = v;
    }
    std::vector<std::string> tokens = Values(params, "access_token");
    evsse::AuthDecision d = AuthorizeTeams(
        app,
        evhttp_find_header(evhttp_request_get_input_headers(req), "Cookie"),
        tokens.empty() ? "" : tokens[0], teams);
    if (d.status != 200) return ReplyError(req, info, d.status, d.message);
    Json out;
    out["topics"] = teams;
    out["alerts"] = app.recent.Get(teams, limit);
    ReplyJson(req, info, 200, out);
  } catch (const std::exception& e) {
    Log(evsse::LogLevel::kError, "internal error", {{"error", e.what()}});
    ReplyError(req, info, 500, "internal error");
  }
}

}  // namespace alerts
