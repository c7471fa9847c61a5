// The subscribe endpoint: everything between a request arriving and a
// session streaming (method, CORS, parsing, authorization, limits, resume).
#include <string.h>
#include <strings.h>

#include <algorithm>
#include <random>
#include <unordered_set>

#include "evsse/wire.h"
#include "hub_impl.h"
#include "poll_session.h"
#include "request.h"
#include "session.h"
#include "tcp_options.h"

namespace evsse::internal {
namespace {

void AddStreamHeaders(Exchange* ex) {
  ex->AddHeader("Content-Type", "text/event-stream; charset=utf-8");
  ex->AddHeader("Cache-Control", "no-cache, no-transform");
  ex->AddHeader("X-Accel-Buffering", "no");
}

bool AcceptsEventStream(const char* accept) {
  return accept && strcasestr(accept, "text/event-stream") != nullptr;
}

// RequestView shows an exchange to an authorization hook.
class RequestView final : public Request {
 public:
  RequestView(Exchange* ex, const std::vector<std::string>& topics)
      : ex_(ex), topics_(topics) {}
  std::string_view method() const override { return ex_->method_name(); }
  std::string_view path() const override { return ex_->path(); }
  const char* header(const char* name) const override {
    return ex_->header(name);
  }
  std::optional<std::string> query(std::string_view key) const override {
    auto q = ParseQuery(ex_->query());
    if (!q.ok()) return std::nullopt;
    auto v = FindParam(*q, key);
    if (!v) return std::nullopt;
    return std::string(*v);
  }
  const std::vector<std::string>& topics() const override { return topics_; }
  std::string peer() const override { return ex_->peer(); }

 private:
  Exchange* ex_;
  const std::vector<std::string>& topics_;
};

// Request headers a CORS preflight may ask for.
constexpr const char* kAllowedRequestHeaders[] = {
    "last-event-id", "cache-control", "authorization",
    "accept",        "content-type",  "x-requested-with"};

bool IsLowerAlnum(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

// OriginProblem is CheckCorsOrigin without the advice on the expected form.
const char* OriginProblem(std::string_view o) {
  size_t sep = o.find("://");
  if (sep == std::string_view::npos || sep == 0) return "no scheme";
  for (size_t i = 0; i < sep; ++i) {
    char c = o[i];
    if (c >= 'A' && c <= 'Z') return "not lower case";
    if (!IsLowerAlnum(c) && c != '+' && c != '-' && c != '.')
      return "invalid scheme";
  }
  std::string_view rest = o.substr(sep + 3);
  size_t end = rest.find_first_of("/?#");
  if (end != std::string_view::npos)
    return end + 1 == rest.size() && rest[end] == '/'
               ? "trailing slash"
               : "has a path, query or fragment";
  if (rest.find('@') != std::string_view::npos) return "has user info";
  std::string_view host = rest, port;
  if (!rest.empty() && rest[0] == '[') {  // an IPv6 literal
    size_t close = rest.find(']');
    if (close == std::string_view::npos) return "unclosed '['";
    for (char c : rest.substr(1, close - 1))
      if (!IsLowerAlnum(c) && c != ':' && c != '.')
        return c >= 'A' && c <= 'Z' ? "not lower case" : "invalid host";
    host = rest.substr(0, close + 1);
    if (close + 1 < rest.size()) {
      if (rest[close + 1] != ':') return "invalid host";
      port = rest.substr(close + 2);
      if (port.empty()) return "empty port";
    }
  } else if (size_t colon = rest.find(':'); colon != std::string_view::npos) {
    host = rest.substr(0, colon);
    port = rest.substr(colon + 1);
    if (port.empty()) return "empty port";
  }
  if (host.empty()) return "no host";
  if (host[0] != '[') {
    for (char c : host) {
      if (c >= 'A' && c <= 'Z') return "not lower case";
      if (!IsLowerAlnum(c) && c != '-' && c != '.') return "invalid host";
    }
  }
  if (!port.empty()) {
    if (port.size() > 5 || port[0] == '0') return "invalid port";
    unsigned n = 0;
    for (char c : port) {
      if (c < '0' || c > '9') return "invalid port";
      n = n * 10 + static_cast<unsigned>(c - '0');
    }
    if (n > 65535) return "invalid port";
  }
  return nullptr;
}

}  // namespace

}  // namespace evsse::internal

namespace evsse {

std::string CheckCorsOrigin(std::string_view origin) {
  if (origin == "*") return "";
  const char* problem = internal::OriginProblem(origin);
  if (!problem) return "";
  return std::string("invalid origin: ") + problem +
         " (expected scheme://host[:port] in lower case, no path and no "
         "trailing slash, or \"*\")";
}

}  // namespace evsse

namespace evsse::internal {

StreamEndpoint::StreamEndpoint(HubImpl* hub, StreamOptions options)
    : hub_(hub),
      options_(std::move(options)),
      heartbeats_(hub->base(), options_.heartbeat.count(),
                  [](Session* s) { s->Heartbeat(); }),
      stalls_(hub->base(), options_.write_stall_timeout.count(),
              [](Session* s) { s->Close(CloseReason::kStall); }),
      rng_(std::random_device{}()) {}

uint64_t StreamEndpoint::JitteredRetry() {
  uint64_t base = static_cast<uint64_t>(options_.retry.count());
  uint64_t j = static_cast<uint64_t>(options_.retry_jitter.count());
  return j == 0 ? base : base + rng_() % (j + 1);
}

int64_t StreamEndpoint::JitteredLifetime() {
  int64_t j = options_.lifetime_jitter.count();
  return options_.max_lifetime.count() +
         (j <= 0 ? 0 : static_cast<int64_t>(rng_() % (j + 1)));
}

void StreamEndpoint::Reject(Exchange* ex, int status, const char* reason,
                            const std::string& message) {
  ++hub_->stats().requests_rejected;
  ex->AddHeader("Content-Type", "text/plain; charset=utf-8");
  ex->AddHeader("Cache-Control", "no-store");
  ex->Reply(status, reason, message + "\n");
}

void StreamEndpoint::Shed(Exchange* ex, const char* reason) {
  ++hub_->stats().connections_shed;
  uint64_t retry = JitteredRetry();
  ex->AddHeader("Connection", "close");
  if (AcceptsEventStream(ex->header("Accept"))) {
    // An EventSource gives up for good on any non-200 status: tell it when
    // to come back instead, and close.
    AddStreamHeaders(ex);
    std::string body;
    AppendRetry(body, retry);
    AppendComment(body, reason);
    body += '\n';
    ex->Reply(200, "OK", body);
    return;
  }
  std::string after = std::to_string(std::max<uint64_t>(1, retry / 1000));
  ex->AddHeader("Retry-After", after.c_str());
  ex->AddHeader("Content-Type", "text/plain; charset=utf-8");
  ex->Reply(503, "Service Unavailable", std::string(reason) + "\n");
}

bool StreamEndpoint::CheckCors(Exchange* ex, const char** origin) {
  *origin = ex->header("Origin");
  if (!*origin || options_.cors_origins.empty()) return true;
  for (const std::string& o : options_.cors_origins)
    if (o == "*" || o == *origin) return true;
  return false;
}

void StreamEndpoint::AddCorsHeaders(Exchange* ex, const char* origin) {
  if (options_.cors_origins.empty()) return;
  ex->AddHeader("Vary", "Origin");
  if (!origin) return;
  bool listed =
      std::find(options_.cors_origins.begin(), options_.cors_origins.end(),
                origin) != options_.cors_origins.end();
  if (!listed) {
    // Only reachable through "*", which Hub refuses with credentials.
    ex->AddHeader("Access-Control-Allow-Origin", "*");
    return;
  }
  ex->AddHeader("Access-Control-Allow-Origin", origin);
  if (options_.cors_credentials)
    ex->AddHeader("Access-Control-Allow-Credentials", "true");
}

void StreamEndpoint::Preflight(Exchange* ex) {
  const char* origin = nullptr;
  const char* want = ex->header("Access-Control-Request-Method");
  if (!ex->header("Origin") || !want) {
    ex->AddHeader("Allow", "GET, HEAD, OPTIONS");
    ex->Reply(204, "No Content", "");
    return;
  }
  if (!CheckCors(ex, &origin) || options_.cors_origins.empty()) {
    Reject(ex, 403, "Forbidden", "origin not allowed");
    return;
  }
  AddCorsHeaders(ex, origin);
  ex->AddHeader("Access-Control-Allow-Methods", "GET, HEAD, OPTIONS");
  std::string allowed;
  for (const char* h : kAllowedRequestHeaders) {
    if (!allowed.empty()) allowed += ", ";
    allowed += h;
  }
  ex->AddHeader("Access-Control-Allow-Headers", allowed.c_str());
  std::string age = std::to_string(options_.cors_max_age.count() / 1000);
  ex->AddHeader("Access-Control-Max-Age", age.c_str());
  ex->Reply(204, "No Content", "");
}

// Expanding holds a request while the backend expands its topics.
class StreamEndpoint::Expanding final : public ExchangeListener {
 public:
  Expanding(StreamEndpoint* endpoint, Exchange* ex, SubscribeRequest r)
      : req(std::move(r)), endpoint_(endpoint), ex_(ex) {
    ex_->set_listener(this);
  }
  void OnDrained() override {}
  void OnClosed() override { ex_ = nullptr; }
  void Done(Result<std::vector<std::vector<std::string>>> r) {
    if (ex_) {
      ex_->set_listener(nullptr);
      endpoint_->Expanded(ex_, std::move(req), std::move(r));
    }
    delete this;
  }

  SubscribeRequest req;

 private:
  StreamEndpoint* endpoint_;
  Exchange* ex_;
};

void StreamEndpoint::Handle(Exchange* ex) {
  switch (ex->method()) {
    case Method::kOptions:
      Preflight(ex);
      return;
    case Method::kGet:
    case Method::kHead:
      break;
    default:
      ex->AddHeader("Allow", "GET, HEAD, OPTIONS");
      Reject(ex, 405, "Method Not Allowed",
             "method not allowed: use GET (or HEAD, OPTIONS)");
      return;
  }
  const char* origin = nullptr;
  if (!CheckCors(ex, &origin)) {
    AddCorsHeaders(ex, nullptr);
    Reject(ex, 403, "Forbidden", "origin not allowed");
    return;
  }
  AddCorsHeaders(ex, origin);

  SubscribeLimits limits;
  limits.max_topics = options_.max_topics_per_connection;
  limits.max_topic_length = hub_->options().max_topic_length;
  // A backend may serve one topic by several (Expand): the cursor then
  // counts the expanded topics, checked once they are known.
  limits.check_cursor_count = hub_->backend() == nullptr;
  auto req = ParseSubscribe(ex->query(), ex->header("Last-Event-ID"), limits);
  if (!req.ok()) {
    Reject(ex, 400, "Bad Request", req.status().message());
    return;
  }
  if (req->poll && !options_.poll_enabled) {
    Reject(ex, 400, "Bad Request",
           "transport=poll is not enabled on this endpoint");
    return;
  }
  if (options_.auth) {
    // Before any byte of the response: a refused topic is never streamed.
    AuthDecision d =
        hub_->Authorize(options_.auth, RequestView(ex, req->topics));
    if (d.status != 200) {
      for (auto& [k, v] : d.headers) ex->AddHeader(k.c_str(), v.c_str());
      if (d.status == 204) {
        ++hub_->stats().requests_rejected;
        ex->Reply(204, "No Content", "");
        return;
      }
      if (d.status == 401)
        Reject(ex, 401, "Unauthorized",
               d.message.empty() ? "unauthorized" : d.message);
      else
        Reject(ex, 403, "Forbidden",
               d.message.empty() ? "forbidden" : d.message);
      return;
    }
  }
  if (Backend* b = hub_->backend()) {
    // Asynchronous: the store may have to be asked. The client may leave
    // meanwhile; the callback fires exactly once either way.
    auto* w = new Expanding(this, ex, std::move(req).value());
    b->Expand(w->req.topics,
              [w](Result<std::vector<std::vector<std::string>>> r) {
                w->Done(std::move(r));
              });
    return;
  }
  Admit(ex, std::move(req).value());
}

void StreamEndpoint::Expanded(Exchange* ex, SubscribeRequest req,
                              Result<std::vector<std::vector<std::string>>> r) {
  if (!r.ok()) {
    if (hub_->LogEnabled(LogLevel::kWarning))
      hub_->Log(LogLevel::kWarning,
                "subscribe: expanding topics: " + r.status().message());
    return Shed(ex, "topics not available now; reconnect later");
  }
  if (r->size() != req.topics.size()) {
    return Reject(ex, 500, "Internal Server Error",
                  "the store expanded " + std::to_string(req.topics.size()) +
                      " topics into " + std::to_string(r->size()));
  }
  std::vector<std::string> topics;
  std::unordered_set<std::string> seen;
  std::vector<std::string> expanded;  // requested topics served by others
  size_t max = options_.max_topics_per_connection;
  for (size_t i = 0; i < r->size(); ++i) {
    if ((*r)[i].size() != 1 || (*r)[i][0] != req.topics[i])
      expanded.push_back(req.topics[i]);
    for (const std::string& name : (*r)[i]) {
      if (topics.size() == max) {
        return Reject(ex, 400, "Bad Request",
                      "more than " + std::to_string(max) +
                          " topics once expanded by the store (topic \"" +
                          EscapeForMessage(req.topics[i]) + "\" is served by " +
                          std::to_string((*r)[i].size()) +
                          "); max_topics_per_connection is " +
                          std::to_string(max));
      }
      if (!seen.insert(name).second) {
        return Reject(ex, 400, "Bad Request",
                      "duplicate topic \"" + EscapeForMessage(name) +
                          "\" once expanded by the store (from \"" +
                          EscapeForMessage(req.topics[i]) + "\")");
      }
      topics.push_back(name);  // a copy: FitCursor reads *r below
    }
  }
  if (req.cursor && req.cursor->size() != topics.size()) {
    // Requested topics whose store topics changed since the cursor was
    // handed out (partitions added to a Kafka topic: the new ones are
    // entirely after the cursor, so they start from their beginning, epoch
    // 0, "before the stream existed"). The store says where they go.
    Backend* b = hub_->backend();
    bool fitted = b && b->FitCursor(*r, &*req.cursor) &&
                  req.cursor->size() == topics.size();
    if (!fitted) {
      size_t n = req.cursor->size();
      return Reject(
          ex, 400, "Bad Request",
          std::string(ex->header("Last-Event-ID") ? "bad Last-Event-ID: "
                                                  : "bad lastEventId: ") +
              std::to_string(n) + " position" + (n == 1 ? "" : "s") + " for " +
              std::to_string(topics.size()) + " topic" +
              (topics.size() == 1 ? "" : "s") +
              (topics.size() == req.topics.size()
                   ? ""
                   : " (once expanded by the store)"));
    }
  }
  req.topics = std::move(topics);
  req.expanded = std::move(expanded);
  Admit(ex, std::move(req));
}

void StreamEndpoint::Admit(Exchange* ex, SubscribeRequest req) {
  if (hub_->draining()) return Shed(ex, "server draining; reconnect later");
  if (hub_->stats().connections_active >= hub_->options().max_connections)
    return Shed(ex, "too many connections; reconnect later");
  // GetTopic may evict an idle topic to make room for the next one, so the
  // topics are looked up again once all exist; one evicted meanwhile (a
  // request for more topics than max_topics leaves room for) sheds it.
  const char* refused = nullptr;
  for (const std::string& name : req.topics)
    if (!hub_->GetTopic(name)) refused = "too many topics; reconnect later";
  std::vector<Topic*> topics;
  for (const std::string& name : req.topics) {
    Topic* t = hub_->FindTopic(name);
    if (!t) {
      refused = "too many topics; reconnect later";
      continue;
    }
    size_t cap = hub_->options().max_subscribers_per_topic;
    if (cap && t->subscribers.size() >= cap)
      refused = "too many subscribers on this topic; reconnect later";
    topics.push_back(t);
  }
  if (refused || ex->method() == Method::kHead) {
    // Topics made for this request and left unused are forgotten again.
    for (Topic* t : topics) hub_->Release(t);
    if (refused) return Shed(ex, refused);
    if (req.poll)
      ex->AddHeader("Content-Type", "application/json; charset=utf-8");
    else
      AddStreamHeaders(ex);
    ex->Reply(200, "OK", "");
    return;
  }

  if (!req.poll) {
    // Before the first byte: Nagle must not hold back the headers either.
    Status so = ConfigureStreamSocket(ex->socket(), options_.dead_peer_timeout);
    if (!so.ok() && hub_->LogEnabled(LogLevel::kWarning))
      hub_->Log(LogLevel::kWarning, "stream socket options: " + so.message());
  }
  // The subscriber decides where each topic resumes (resume.cc): a poll
  // answers one JSON document, a stream goes on.
  Subscription* s;
  if (req.poll)
    s = new PollSession(this, ex);
  else
    s = new Session(this, ex);
  hub_->AddSession(s);
  if (!req.poll) AddStreamHeaders(ex);
  for (Topic* t : topics) {
    s->subs.emplace_back();
    hub_->Subscribe(s, t);
  }
  s->set_expanded(std::move(req.expanded));
  s->Open(std::move(req.cursor));
}

}  // namespace evsse::internal
