// evsse-alerts: the alert-notification server built on evsse's public API.
// This header is the application's own: its state and the functions each
// file provides. Everything runs on the one event loop thread.
#ifndef EVSSE_EXAMPLES_ALERTS_APP_H_
#define EVSSE_EXAMPLES_ALERTS_APP_H_

#include <event2/event.h>
#include <event2/http.h>
#include <evsse/hub.h>
#include <evsse/mounted.h>
#include <evsse/redis.h>
#ifdef EVSSE_HAVE_KAFKA
#include <evsse/kafka.h>
#endif

#include <chrono>
#include <cstdint>
#include <deque>
#include <initializer_list>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "config.h"

namespace alerts {

using Clock = std::chrono::steady_clock;
using Json = nlohmann::ordered_json;

// --- log.cc
// -------------------------------------------------------------------

// Field: one key=value of a log line. Values are quoted when needed; callers
// never pass secrets (tokens, Authorization, access_token values).
using Field = std::pair<std::string_view, std::string>;

// Log writes one line to stderr: ts=... level=... msg=... key=value...
void Log(evsse::LogLevel level, std::string_view msg,
         std::initializer_list<Field> fields = {});
void SetLogLevel(evsse::LogLevel level);
// NowIso returns the wall-clock time as 2024-05-01T12:00:00.123Z.
std::string NowIso();
int64_t NowUnixMs();

// --- alert.cc: the POST /alerts body, validated (pure)
// ------------------------

struct Alert {
  std::string severity;  // info | warning | critical
  std::string title;
  std::string body;
  std::string team;
  std::string dedup_key;  // empty: none
};

// ParseAlert checks a request body against `limits`; the error message is
// fit for a 400 answer (it never echoes the body).
evsse::Result<Alert> ParseAlert(std::string_view body,
                                const AlertOptions& limits);
// ValidateTeam: 1..max_len bytes of A-Z a-z 0-9 . _ -
evsse::Status ValidateTeam(std::string_view team, size_t max_len);
// AlertData is the event's data: the alert plus the server's timestamp.
Json AlertData(const Alert& alert, const std::string& ts);
// IsJsonContentType: application/json, optionally with charset=utf-8.
bool IsJsonContentType(const char* content_type);

// --- State kept by the application
// --------------------------------------------

// RecentAlerts: the last N alerts of each team, recorded when this node
// publishes them (so, with Redis, per node).
class RecentAlerts {
 public:
  void Add(const std::string& team, const std::string& id, Json data);
  // Get returns up to `limit` alerts of `teams`, oldest first, each with its
  // "id".
  Json Get(const std::vector<std::string>& teams, size_t limit) const;
  void Configure(size_t per_team, size_t max_teams);
  size_t size() const { return total_; }

 private:
  struct Entry {
    uint64_t seq;
    Json alert;  // data + id
  };
  struct Team {
    std::deque<Entry> entries;
    uint64_t last_seq = 0;
  };
  void Trim(Team& t);
  std::unordered_map<std::string, Team> teams_;
  size_t per_team_ = 100, max_teams_ = 10000, total_ = 0;
  uint64_t seq_ = 0;
};

class PendingReply;

// Dedup remembers (team, dedup_key) -> id for the dedup window. A repeat
// that arrives while the first publish is still in flight waits for it.
class Dedup {
 public:
  struct Entry {
    std::string id;          // empty while in flight
    int64_t expires_ms = 0;  // set when the id is known
    std::vector<std::shared_ptr<PendingReply>> waiters;
  };
  // Find returns the live entry of `key`, or nullptr.
  Entry* Find(const std::string& key, int64_t now_ms);
  Entry* Start(const std::string& key);
  void Finish(const std::string& key, const std::string& id, int64_t now_ms,
              int64_t window_ms);
  void Erase(const std::string& key) { map_.erase(key); }
  void set_capacity(size_t n) { capacity_ = n; }
  size_t size() const { return map_.size(); }

 private:
  void Sweep(int64_t now_ms);
  std::unordered_map<std::string, Entry> map_;
  std::deque<std::pair<int64_t, std::string>> order_;  // (expiry, key)
  size_t capacity_ = 100000;
};

struct Counters {
  std::map<std::string, uint64_t> published;  // by severity
  std::map<int, uint64_t> rejected;           // by HTTP status
  uint64_t deduplicated = 0;
  uint64_t reloads_ok = 0;
  uint64_t reloads_failed = 0;
};

struct App {
  // Configuration: the file, the flags that override it, what is in force.
  std::string config_path;
  std::string listen_flag, redis_flag;  // empty: from the file
  std::string wait_replicas_flag;       // --redis-wait-replicas
  std::string kafka_flag;               // --kafka HOST:PORT[,HOST:PORT...]
  std::string sentinel_flag;            // --redis-sentinel
  std::string cluster_flag;             // --redis-cluster
  Config config;
  std::string publish_token;   // config, else ALERTS_TOKEN
  std::string listen_address;  // as bound (the real port when 0 was asked)
  std::string stream_path;     // the first subscribe endpoint

  event_base* base = nullptr;
  evhttp* http = nullptr;
  evhttp_bound_socket* bound = nullptr;
  std::unique_ptr<evsse::Hub> hub;
  std::unique_ptr<evsse::redis::Link> redis_link;
#ifdef EVSSE_HAVE_KAFKA
  std::unique_ptr<evsse::kafka::Link> kafka_link;
#endif
  std::vector<evsse::Mounted> mounts;  // the endpoints' handles
  bool draining = false;
  int64_t started_unix_ms = 0;

  RecentAlerts recent;
  Dedup dedup;
  Counters counters;
};

// --- main.cc
// ------------------------------------------------------------------

// LoadConfig reads `app.config_path` and applies the flags and the token
// environment variable; the result is not in force yet.
evsse::Result<Config> LoadConfig(const App& app, std::string* token);
// ApplyLive puts in force what can change without a restart.
void ApplyLive(App& app);

// --- reload.cc
// ----------------------------------------------------------------

// Reload re-reads the file (SIGHUP): live settings change, the rest is
// reported as needing a restart; errors are logged and change nothing.
void Reload(App& app);

// --- http.cc: replies and the access log
// ----------------------------------------

// RequestInfo: what the access log line says about a request.
struct RequestInfo {
  std::string method;
  std::string path;  // query secrets (access_token) redacted
  std::string peer;
  Clock::time_point start = Clock::now();
};
RequestInfo Describe(evhttp_request* req);

// Reply sends a whole response and writes the access log line.
void Reply(
    evhttp_request* req, const RequestInfo& info, int status,
    std::string_view content_type, std::string_view body,
    std::initializer_list<std::pair<const char*, std::string>> headers = {});
void ReplyJson(
    evhttp_request* req, const RequestInfo& info, int status, const Json& body,
    std::initializer_list<std::pair<const char*, std::string>> headers = {});
void ReplyError(
    evhttp_request* req, const RequestInfo& info, int status,
    const std::string& message,
    std::initializer_list<std::pair<const char*, std::string>> headers = {});
// Query decodes the request's query string, in order (false when it is
// malformed).
using Params = std::vector<std::pair<std::string, std::string>>;
bool Query(evhttp_request* req, Params* out);
std::vector<std::string> Values(const Params& params, std::string_view key);
std::string Body(evhttp_request* req);

// PendingReply: a request answered later (after the Hub's publish
// callback). The client may go away first; then the reply is dropped.
class PendingReply {
 public:
  PendingReply(evhttp_request* req, RequestInfo info);
  ~PendingReply();
  PendingReply(const PendingReply&) = delete;
  PendingReply& operator=(const PendingReply&) = delete;
  void Json(int status, const alerts::Json& body);
  void Error(int status, const std::string& message);

 private:
  static void OnClose(evhttp_connection* conn, void* arg);
  evhttp_request* req_;
  evhttp_connection* conn_;
  RequestInfo info_;
};

// --- auth.cc
// ------------------------------------------------------------------

// ConstantTimeEquals compares without an early exit.
bool ConstantTimeEquals(std::string_view a, std::string_view b);
// CheckPublisher: the Authorization header against the publish token.
bool CheckPublisher(const App& app, const char* authorization);
// AuthorizeTeams: the subscriber token (cookie alerts_token, else
// access_token) for `teams`: 200, 401 (no or unknown token) or 403.
evsse::AuthDecision AuthorizeTeams(const App& app, const char* cookie_header,
                                   const std::string& access_token,
                                   const std::vector<std::string>& teams);
// StreamAuth is the StreamOptions::auth hook of the alert streams; it also
// writes the stream's access log line.
evsse::AuthHook StreamAuth(App* app);

// --- alerts_handler.cc
// ----------------------------------------------------------

void OnPostAlert(evhttp_request* req, void* app);
void OnRecent(evhttp_request* req, void* app);

// --- metrics.cc
// ---------------------------------------------------------------

void OnMetrics(evhttp_request* req, void* app);
void OnStatus(evhttp_request* req, void* app);
// ConfigSummary: the configuration without secrets (status, reload diffs).
Json ConfigSummary(const Config& config);

// --- page.cc
// ------------------------------------------------------------------

void OnPage(evhttp_request* req, void* app);
void OnScript(evhttp_request* req, void* app);
void OnNotFound(evhttp_request* req, void* app);

}  // namespace alerts

#endif  // EVSSE_EXAMPLES_ALERTS_APP_H_
