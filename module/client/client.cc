#include "evsse/client.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <strings.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstring>
#include <iterator>
#include <map>
#include <random>
#include <string_view>

#include "client_tls.h"
#include "tcp_options.h"

namespace evsse {
namespace {

using Millis = std::chrono::milliseconds;

// A server's `retry:` may be any uint64; past a day it is clamped so delay
// arithmetic cannot overflow.
constexpr Millis kMaxRetry{24LL * 3600 * 1000};
// Backoff doubles from at least this, so `retry: 0` cannot spin on failures.
constexpr Millis kMinBackoff{50};
constexpr size_t kMaxResponseHeaderBytes = 64 << 10;

timeval ToTimeval(Millis d) {
  timeval tv;
  tv.tv_sec = static_cast<time_t>(d.count() / 1000);
  tv.tv_usec = static_cast<suseconds_t>((d.count() % 1000) * 1000);
  return tv;
}

bool IsTokenChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
         (c >= '0' && c <= '9') || std::strchr("!#$%&'*+-.^_`|~", c);
}

bool HasLineBreakOrNul(std::string_view s) {
  return s.find_first_of(std::string_view("\r\n\0", 3)) != s.npos;
}

bool EqualsNoCase(std::string_view a, std::string_view b) {
  return a.size() == b.size() && strncasecmp(a.data(), b.data(), a.size()) == 0;
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t'))
    s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t'))
    s.remove_suffix(1);
  return s;
}

// The media type before any parameters ("text/event-stream; charset=utf-8").
bool IsEventStream(const char* content_type) {
  if (!content_type) return false;
  std::string_view v(content_type);
  return EqualsNoCase(Trim(v.substr(0, v.find(';'))), "text/event-stream");
}

StatusCode CodeForHttpStatus(int status) {
  if (status == 400) return StatusCode::kInvalidArgument;
  if (status == 401) return StatusCode::kUnauthenticated;
  if (status == 403) return StatusCode::kPermissionDenied;
  if (status == 404 || status == 410) return StatusCode::kNotFound;
  if (status == 429) return StatusCode::kResourceExhausted;
  return status >= 500 ? StatusCode::kUnavailable
                       : StatusCode::kFailedPrecondition;
}

const char* RequestErrorText(std::optional<evhttp_request_error> e) {
  // In the order of enum evhttp_request_error.
  static const char* const kText[] = {
      "timed out", "connection closed", "invalid response",
      "i/o error", "cancelled",         "invalid response body"};
  if (!e || *e < 0 || static_cast<size_t>(*e) >= std::size(kText))
    return "connection failed";
  return kText[*e];
}

}  // namespace

struct Client::Impl {
  // What follows a finished attempt.
  enum class Next { kRetry, kFatal, kStop };
  template <typename F>
  using Slot = std::shared_ptr<const F>;

  Impl(event_base* b, ClientOptions o)
      : base(b),
        options(std::move(o)),
        parser(StreamParser::Limits{options.max_line_bytes,
                                    options.max_data_bytes}),
        rng(std::random_device{}()) {
    reconnect_timer = evtimer_new(base, &OnReconnectTimer, this);
    connect_timer = evtimer_new(base, &OnConnectTimeout, this);
    idle_timer = evtimer_new(base, &OnIdleTimeout, this);
    reaper = event_new(base, -1, 0, &OnReap, this);
    parser.on_event = [this](const Event& e) { DeliverEvent(e); };
  }

  ~Impl() {
    Reap();
    for (event* e : {reconnect_timer, connect_timer, idle_timer, reaper})
      if (e) event_free(e);
  }

  // Entered marks a call into the Impl from libevent or from the user. A
  // Client destroyed meanwhile leaves its Impl orphaned; the outermost
  // Entered then defers the delete to the loop, because libevent may still
  // call back with this Impl as argument right after we return (a header
  // callback that answered -1 is followed by the error and done callbacks).
  struct Entered {
    explicit Entered(Impl* i) : impl(i) { ++impl->depth; }
    ~Entered() {
      if (--impl->depth == 0 && impl->orphaned && !impl->delete_scheduled) {
        impl->delete_scheduled = true;
        timeval now{0, 0};
        event_base_once(impl->base, -1, EV_TIMEOUT, &OnDeferredDelete, impl,
                        &now);
      }
    }
    Impl* impl;
  };

  // --- attempts -----------------------------------------------------------

  void Connect() {
    parser.Finish();  // a new body; the last id and retry persist
    ++attempts;
    http_status = 0;
    http_reason.clear();
    error_body.clear();
    stream_open = false;
    events_this_attempt = 0;
    request_error.reset();
    rejected = Status();
    retry_after.reset();
    state = ReadyState::kConnecting;
    // With several URLs every reconnect moves on to the next one: the one
    // that just failed (or ended) is the likeliest to fail again.
    if (attempts > 1 && endpoints.size() > 1) {
      current = (current + 1) % endpoints.size();
      SelectEndpoint();
    }

    if (use_tls) {
      // An https endpoint only ever gets a TLS connection: no plain retry.
      verify = internal::TlsVerifyRecord();
      verify.host = host;
      bufferevent* bev = tls->NewBufferevent(base, &verify, TlsServer());
      if (!bev)
        return EndAttempt(
            UnavailableError("cannot set up TLS for " + authority),
            Next::kRetry);
      evcon = evhttp_connection_base_bufferevent_new(base, options.dns_base,
                                                     bev, host.c_str(), port);
      if (!evcon) bufferevent_free(bev);
    } else {
      evcon = evhttp_connection_base_new(base, options.dns_base, host.c_str(),
                                         port);
    }
    if (!evcon)
      return EndAttempt(UnavailableError("cannot create a connection"),
                        Next::kRetry);
    // libevent's own defaults (45 s connect, 50 s read) would cut a quiet
    // stream; our timers decide. This is only a backstop until the headers,
    // after which the stream has no libevent timeout at all.
    timeval backstop{3600, 0};
    evhttp_connection_set_timeout_tv(evcon, &backstop);
    evhttp_connection_set_max_headers_size(evcon, kMaxResponseHeaderBytes);

    evhttp_request* r = evhttp_request_new(&OnRequestDone, this);
    if (!r)
      return EndAttempt(UnavailableError("cannot create a request"),
                        Next::kRetry);
    evhttp_request_set_header_cb(r, &OnHeaders);
    evhttp_request_set_chunked_cb(r, &OnChunk);
    evhttp_request_set_error_cb(r, &OnRequestError);
    AddRequestHeaders(evhttp_request_get_output_headers(r));

    req = r;
    awaiting_done = true;
    if (options.connect_timeout.count() > 0) {
      timeval tv = ToTimeval(options.connect_timeout);
      evtimer_add(connect_timer, &tv);
    }
    uint64_t gen = generation;
    // libevent may fail the request synchronously (a blocking resolver
    // that found nothing): then our callbacks already ended the attempt.
    if (evhttp_make_request(evcon, r, EVHTTP_REQ_GET, target.c_str()) != 0 &&
        gen == generation) {
      req = nullptr;  // freed by libevent
      awaiting_done = false;
      EndAttempt(UnavailableError("cannot send the request to " + authority),
                 Next::kRetry);
    }
  }

  void AddRequestHeaders(evkeyvalq* h) {
    auto user_has = [this](std::string_view name) {
      for (auto& [k, v] : options.headers)
        if (EqualsNoCase(k, name)) return true;
      return false;
    };
    if (!user_has("Host")) evhttp_add_header(h, "Host", authority.c_str());
    if (!user_has("Accept"))
      evhttp_add_header(h, "Accept", "text/event-stream");
    if (!user_has("Cache-Control"))
      evhttp_add_header(h, "Cache-Control", "no-cache");
    if (!parser.last_event_id().empty())
      evhttp_add_header(h, "Last-Event-ID", parser.last_event_id().c_str());
    for (auto& [k, v] : options.headers)
      evhttp_add_header(h, k.c_str(), v.c_str());
  }

  // AbandonRequest drops the current attempt's request and connection.
  // Cancelling is legal from timers, from outside any callback and from the
  // chunk callback (libevent defers the free); inside the header callback
  // the request is failed by returning -1 instead. The connection is freed
  // later from the loop: we may be deep inside its own callbacks here.
  void AbandonRequest() {
    ++generation;
    evtimer_del(connect_timer);
    evtimer_del(idle_timer);
    if (req) {
      evhttp_request* r = req;
      req = nullptr;
      if (in_header_cb) {
        abort_in_header = true;
      } else {
        evhttp_request_set_error_cb(r, nullptr);
        evhttp_cancel_request(r);
      }
    }
    awaiting_done = false;
    if (evcon) {
      if (use_tls)
        internal::ClientTls::Detach(evhttp_connection_get_bufferevent(evcon));
      dead.push_back(evcon);
      evcon = nullptr;
      event_active(reaper, EV_TIMEOUT, 0);
    }
  }

  void EndAttempt(Status why, Next next) {
    bool success =
        events_this_attempt > 0 ||
        (stream_open &&
         std::chrono::steady_clock::now() - opened_at >= options.stable_after);
    AbandonRequest();
    if (next == Next::kStop) return FireClose(why);
    if (next == Next::kFatal) {
      state = ReadyState::kClosed;
      closing_reason = why;
      FireError(why);
      return FireClose(why);
    }
    failures = success ? 0 : failures + 1;
    state = ReadyState::kConnecting;
    delay = NextDelay();
    timeval tv = ToTimeval(delay);
    evtimer_add(reconnect_timer, &tv);
    FireError(why);
  }

  // NextDelay: the server's retry (or initial_retry) after a success; after
  // n consecutive failures a delay drawn from [g/2, g] with
  // g = base * 2^(n-1) capped at max_backoff, never below base.
  Millis NextDelay() {
    Millis base_delay = options.initial_retry;
    if (parser.retry())
      base_delay =
          Millis(std::min<uint64_t>(*parser.retry(), kMaxRetry.count()));
    Millis d = base_delay;
    if (failures > 0) {
      Millis cap = std::max(options.max_backoff, base_delay);
      Millis g = std::max(base_delay, kMinBackoff);
      for (int i = 1; i < failures && g < cap; ++i) g *= 2;
      g = std::min(g, std::max(cap, kMinBackoff));
      std::uniform_int_distribution<int64_t> half(0, g.count() - g.count() / 2);
      d = std::max(base_delay, Millis(g.count() / 2 + half(rng)));
    }
    if (retry_after) d = std::max(d, *retry_after);
    return d;
  }

  Status HttpError() const {
    std::string m = "HTTP " + std::to_string(http_status);
    if (!http_reason.empty()) m += " " + http_reason;
    // One line for logs: control characters become spaces.
    std::string body = error_body;
    for (char& c : body)
      if (static_cast<unsigned char>(c) < 0x20) c = ' ';
    if (!Trim(body).empty()) m += ": " + std::string(Trim(body));
    return Status(CodeForHttpStatus(http_status), std::move(m));
  }

  // TlsFailure: why the TLS connection failed, if it was TLS that failed:
  // a refused certificate (kFailedPrecondition), or OpenSSL's reasons for
  // a broken handshake or record (kUnavailable). OK otherwise.
  Status TlsFailure() {
    if (verify.failed)
      return FailedPreconditionError(
          "TLS handshake with " + authority +
          " failed: certificate verify failed: " + verify.reason);
    std::string e = internal::ClientTls::TakeErrors(
        evhttp_connection_get_bufferevent(evcon));
    if (e.empty()) return Status::Ok();
    if (stream_open)
      return UnavailableError("TLS error on the stream from " + authority +
                              ": " + e);
    return UnavailableError("TLS handshake with " + authority +
                            " failed: " + e);
  }

  Next OnHttpError() const {
    return options.reconnect_on_http_error ? Next::kRetry : Next::kFatal;
  }

  void ArmIdle() {
    if (options.idle_timeout.count() <= 0) return;
    timeval tv = ToTimeval(options.idle_timeout);
    evtimer_add(idle_timer, &tv);
  }

  // --- user callbacks -----------------------------------------------------

  void DeliverEvent(const Event& e) {
    // Events after Close() or a failure in the same chunk are dropped.
    if (state != ReadyState::kOpen) return;
    ++events_this_attempt;
    uint64_t gen = generation;
    if (auto cb = on_event) (*cb)(e);
    if (gen != generation || state != ReadyState::kOpen) return;
    auto it = handlers.find(e.type);
    if (it == handlers.end()) return;
    auto cb = it->second;  // keeps it alive if it replaces itself
    (*cb)(e);
  }

  void FireError(const Status& s) {
    if (auto cb = on_error) (*cb)(s);
  }

  void FireClose(const Status& s) {
    state = ReadyState::kClosed;
    if (close_fired) return;
    close_fired = true;
    evtimer_del(reconnect_timer);
    if (auto cb = on_close) (*cb)(s);
  }

  void Close(Status why) {
    Entered e(this);
    if (close_fired) return;
    state = ReadyState::kClosed;
    AbandonRequest();
    evtimer_del(reconnect_timer);
    FireClose(closing_reason.ok() ? why : closing_reason);
  }

  void Reap() {
    for (evhttp_connection* c : dead) evhttp_connection_free(c);
    dead.clear();
  }

  // --- libevent callbacks -------------------------------------------------

  static int OnHeaders(evhttp_request* r, void* arg) {
    auto* self = static_cast<Impl*>(arg);
    Entered e(self);
    if (r != self->req) return 0;
    self->http_status = evhttp_request_get_response_code(r);
    const char* line = evhttp_request_get_response_code_line(r);
    self->http_reason = line ? line : "";
    evkeyvalq* in = evhttp_request_get_input_headers(r);
    if (self->http_status != 200) {
      // The body (the error text) comes through OnChunk; the connect timer
      // keeps bounding it.
      const char* ra = evhttp_find_header(in, "Retry-After");
      if (ra && *ra && std::strspn(ra, "0123456789") == std::strlen(ra) &&
          std::strlen(ra) < 9)
        self->retry_after = std::min(Millis(std::atol(ra) * 1000LL), kMaxRetry);
      return 0;
    }
    const char* ct = evhttp_find_header(in, "Content-Type");
    if (!IsEventStream(ct)) {
      self->rejected = FailedPreconditionError(
          std::string("unexpected Content-Type \"") + (ct ? ct : "") +
          "\" (want text/event-stream)");
      return -1;  // libevent then fails the request: OnRequestDone(nullptr)
    }
    evtimer_del(self->connect_timer);
    bufferevent* bev = evhttp_connection_get_bufferevent(self->evcon);
    bufferevent_set_timeouts(bev, nullptr, nullptr);
    // By now a TLS 1.3 server's session tickets have arrived (they precede
    // the response).
    if (self->use_tls) self->tls->Remember(bev, self->TlsServer());
    // Best effort: a socket that refuses an option still streams, and the
    // idle timeout (if set) remains as a bound.
    internal::ConfigureStreamSocket(bufferevent_getfd(bev),
                                    self->options.dead_peer_timeout)
        .IgnoreError();
    self->stream_open = true;
    self->opened_at = std::chrono::steady_clock::now();
    self->state = ReadyState::kOpen;
    self->ArmIdle();
    self->in_header_cb = true;
    if (auto cb = self->on_open) (*cb)();
    self->in_header_cb = false;
    if (self->abort_in_header) {
      self->abort_in_header = false;
      return -1;
    }
    return 0;
  }

  static void OnChunk(evhttp_request* r, void* arg) {
    auto* self = static_cast<Impl*>(arg);
    Entered e(self);
    if (!self->awaiting_done || r != self->req) return;
    evbuffer* in = evhttp_request_get_input_buffer(r);
    if (!self->stream_open) {  // the body of an error response
      size_t room =
          self->options.max_error_body_bytes - self->error_body.size();
      size_t n = std::min(room, evbuffer_get_length(in));
      size_t old = self->error_body.size();
      self->error_body.resize(old + n);
      evbuffer_copyout(in, &self->error_body[old], n);
      if (self->error_body.size() >= self->options.max_error_body_bytes)
        self->EndAttempt(self->HttpError(), self->OnHttpError());
      return;
    }
    self->ArmIdle();
    int n = evbuffer_peek(in, -1, nullptr, nullptr, 0);
    std::vector<evbuffer_iovec> vec(static_cast<size_t>(std::max(n, 0)));
    n = evbuffer_peek(in, -1, nullptr, vec.data(), n);
    uint64_t gen = self->generation;
    for (int i = 0; i < n; ++i) {
      Status s = self->parser.Feed(std::string_view(
          static_cast<const char*>(vec[i].iov_base), vec[i].iov_len));
      if (gen != self->generation) return;  // closed or failed meanwhile
      if (!s.ok()) return self->EndAttempt(s, Next::kRetry);
    }
  }

  static void OnRequestError(evhttp_request_error err, void* arg) {
    auto* self = static_cast<Impl*>(arg);
    if (self->awaiting_done) self->request_error = err;
  }

  // OnRequestDone: libevent is done with the request (and frees it after we
  // return). r is null when the connection failed after the request was
  // sent; r has status 0 when connecting failed.
  static void OnRequestDone(evhttp_request* r, void* arg) {
    auto* self = static_cast<Impl*>(arg);
    Entered e(self);
    if (!self->awaiting_done) return;  // abandoned from the header callback
    self->awaiting_done = false;
    self->req = nullptr;
    if (!self->rejected.ok())
      return self->EndAttempt(self->rejected, self->OnHttpError());
    if (self->use_tls && self->evcon) {
      Status s = self->TlsFailure();
      if (s.code() == StatusCode::kFailedPrecondition)
        return self->EndAttempt(s, self->OnHttpError());
      if (!s.ok()) return self->EndAttempt(s, Next::kRetry);
    }
    if (!r) {
      // No resolved address: the name lookup failed (libevent reports it
      // as an EOF).
      const sockaddr* sa =
          self->evcon ? evhttp_connection_get_addr(self->evcon) : nullptr;
      if (self->http_status == 0 && (!sa || sa->sa_family == AF_UNSPEC))
        return self->EndAttempt(
            UnavailableError("cannot resolve or reach " + self->host),
            Next::kRetry);
      std::string m = RequestErrorText(self->request_error);
      if (!self->stream_open) m += " before a response from " + self->authority;
      return self->EndAttempt(UnavailableError(m), Next::kRetry);
    }
    int status = evhttp_request_get_response_code(r);
    if (status == 0)
      return self->EndAttempt(
          UnavailableError("cannot connect to " + self->authority),
          Next::kRetry);
    if (status == 204)
      return self->EndAttempt(Status(StatusCode::kOk, "stopped by server"),
                              Next::kStop);
    if (status != 200)
      return self->EndAttempt(self->HttpError(), self->OnHttpError());
    self->EndAttempt(UnavailableError("stream ended by server"), Next::kRetry);
  }

  static void OnReconnectTimer(evutil_socket_t, short, void* arg) {
    auto* self = static_cast<Impl*>(arg);
    Entered e(self);
    self->Connect();
  }

  static void OnConnectTimeout(evutil_socket_t, short, void* arg) {
    auto* self = static_cast<Impl*>(arg);
    Entered e(self);
    if (self->http_status != 0 && self->http_status != 200)
      return self->EndAttempt(self->HttpError(), self->OnHttpError());
    self->EndAttempt(
        UnavailableError("no response from " + self->authority + " within " +
                         std::to_string(self->options.connect_timeout.count()) +
                         " ms"),
        Next::kRetry);
  }

  static void OnIdleTimeout(evutil_socket_t, short, void* arg) {
    auto* self = static_cast<Impl*>(arg);
    Entered e(self);
    self->EndAttempt(
        UnavailableError("no data for " +
                         std::to_string(self->options.idle_timeout.count()) +
                         " ms (idle timeout)"),
        Next::kRetry);
  }

  static void OnReap(evutil_socket_t, short, void* arg) {
    static_cast<Impl*>(arg)->Reap();
  }

  static void OnDeferredDelete(evutil_socket_t, short, void* arg) {
    delete static_cast<Impl*>(arg);
  }

  // --- state --------------------------------------------------------------

  event_base* base;
  ClientOptions options;
  std::string host;  // to connect to (no IPv6 brackets)
  uint16_t port = 80;
  std::string authority;  // Host header: host[:port]
  std::string target;     // path?query
  bool use_tls = false;   // https
  // Endpoint: one parsed URL (options.url, then options.fallback_urls).
  struct Endpoint {
    std::string url, host, authority, target;
    uint16_t port = 80;
    bool tls = false;
  };
  std::vector<Endpoint> endpoints;
  size_t current = 0;
  void SelectEndpoint() {
    const Endpoint& e = endpoints[current];
    host = e.host;
    port = e.port;
    authority = e.authority;
    target = e.target;
    use_tls = e.tls;
  }
  std::unique_ptr<internal::ClientTls> tls;  // when the URLs are https
  std::string TlsServer() const { return host + ":" + std::to_string(port); }
  internal::TlsVerifyRecord verify;  // the current attempt's
  StreamParser parser;
  std::mt19937_64 rng;

  Slot<std::function<void()>> on_open;
  Slot<EventCallback> on_event;
  Slot<StatusCallback> on_error;
  Slot<StatusCallback> on_close;
  std::map<std::string, Slot<EventCallback>, std::less<>> handlers;

  ReadyState state = ReadyState::kConnecting;
  bool started = false;
  bool close_fired = false;
  Status closing_reason;  // a fatal error while its on_error runs

  // The current attempt.
  evhttp_connection* evcon = nullptr;
  evhttp_request* req = nullptr;  // until done or cancelled
  bool awaiting_done = false;     // libevent still owes OnRequestDone
  bool in_header_cb = false;
  bool abort_in_header = false;
  int http_status = 0;
  std::string http_reason;
  std::string error_body;
  Status rejected;  // a 200 that is not an event stream
  std::optional<evhttp_request_error> request_error;
  std::optional<Millis> retry_after;
  bool stream_open = false;
  std::chrono::steady_clock::time_point opened_at;
  uint64_t events_this_attempt = 0;
  uint64_t generation = 0;  // bumped whenever an attempt is abandoned
  uint64_t attempts = 0;

  int failures = 0;  // consecutive
  Millis delay{0};
  event* reconnect_timer = nullptr;
  event* connect_timer = nullptr;
  event* idle_timer = nullptr;
  event* reaper = nullptr;
  std::vector<evhttp_connection*> dead;  // freed by the reaper

  int depth = 0;
  bool orphaned = false;
  bool delete_scheduled = false;
};

namespace {

Status ParseUrl(const std::string& url, bool* tls, std::string* host,
                uint16_t* port, std::string* authority, std::string* target) {
  std::unique_ptr<evhttp_uri, void (*)(evhttp_uri*)> uri(
      evhttp_uri_parse(url.c_str()), &evhttp_uri_free);
  if (!uri) return InvalidArgumentError("invalid URL \"" + url + "\"");
  const char* scheme = evhttp_uri_get_scheme(uri.get());
  *tls = scheme && strcasecmp(scheme, "https") == 0;
  if (!scheme || (!*tls && strcasecmp(scheme, "http") != 0))
    return InvalidArgumentError("URL \"" + url +
                                "\": only http:// and https:// are supported");
  if (evhttp_uri_get_userinfo(uri.get()))
    return InvalidArgumentError("URL \"" + url +
                                "\": put credentials in a header");
  const char* h = evhttp_uri_get_host(uri.get());
  if (!h || !*h) return InvalidArgumentError("URL \"" + url + "\": no host");
  int p = evhttp_uri_get_port(uri.get());
  if (p == 0) return InvalidArgumentError("URL \"" + url + "\": port 0");
  const uint16_t default_port = *tls ? 443 : 80;
  *port = p < 0 ? default_port : static_cast<uint16_t>(p);
  *authority = h;
  if (p > 0 && p != default_port) *authority += ":" + std::to_string(p);
  std::string_view hv(h);
  if (hv.size() > 2 && hv.front() == '[' && hv.back() == ']')
    hv = hv.substr(1, hv.size() - 2);
  *host = std::string(hv);
  const char* path = evhttp_uri_get_path(uri.get());
  *target = path && *path ? path : "/";
  const char* query = evhttp_uri_get_query(uri.get());
  if (query) *target += std::string("?") + query;
  return Status::Ok();
}

Status Validate(const ClientOptions& o) {
  for (auto& [k, v] : o.headers) {
    if (k.empty() || !std::all_of(k.begin(), k.end(), IsTokenChar))
      return InvalidArgumentError("invalid header name \"" + k + "\"");
    if (HasLineBreakOrNul(v))
      return InvalidArgumentError("header " + k +
                                  ": value contains CR, LF or NUL");
    if (EqualsNoCase(k, "Last-Event-ID"))
      return InvalidArgumentError(
          "set ClientOptions::last_event_id instead of a Last-Event-ID "
          "header");
  }
  if (HasLineBreakOrNul(o.last_event_id))
    return InvalidArgumentError("last_event_id contains CR, LF or NUL");
  if (o.last_event_id.size() + 4 > o.max_line_bytes)
    return InvalidArgumentError("last_event_id longer than max_line_bytes");
  for (Millis d : {o.connect_timeout, o.idle_timeout, o.initial_retry,
                   o.max_backoff, o.stable_after, o.dead_peer_timeout})
    if (d.count() < 0 || d > kMaxRetry)
      return InvalidArgumentError("a duration is negative or over a day");
  if (o.max_line_bytes == 0 || o.max_data_bytes == 0)
    return InvalidArgumentError("parser limits must be positive");
  return Status::Ok();
}

}  // namespace

Result<std::unique_ptr<Client>> Client::Create(event_base* base,
                                               ClientOptions options) {
  if (!base) return InvalidArgumentError("no event_base");
  Status s = Validate(options);
  if (!s.ok()) return s;
  std::vector<Client::Impl::Endpoint> endpoints;
  std::vector<std::string> urls{options.url};
  urls.insert(urls.end(), options.fallback_urls.begin(),
              options.fallback_urls.end());
  for (const std::string& url : urls) {
    Client::Impl::Endpoint e;
    e.url = url;
    s = ParseUrl(url, &e.tls, &e.host, &e.port, &e.authority, &e.target);
    if (!s.ok()) return s;
    if (!endpoints.empty() && e.tls != endpoints[0].tls)
      return InvalidArgumentError(
          "fallback URL \"" + url + "\" and url \"" + options.url +
          "\" differ in scheme (http and https are not mixed)");
    endpoints.push_back(std::move(e));
  }
  std::unique_ptr<internal::ClientTls> tls;
  if (endpoints[0].tls) {
    auto created = internal::ClientTls::Create(options);
    if (!created.ok()) return created.status();
    tls = std::move(created.value());
  }

  std::unique_ptr<Client> c(new Client());
  c->impl_ = new Impl(base, std::move(options));
  Impl* i = c->impl_;
  if (!i->reconnect_timer || !i->connect_timer || !i->idle_timer || !i->reaper)
    return InternalError("cannot create libevent events");
  i->endpoints = std::move(endpoints);
  i->tls = std::move(tls);
  i->SelectEndpoint();
  if (!i->options.last_event_id.empty()) {
    // The parser owns the last event id; seed it the way a stream would.
    i->parser.Feed("id: " + i->options.last_event_id + "\n\n").IgnoreError();
    i->parser.Finish();
  }
  return c;
}

Client::~Client() {
  if (!impl_) return;
  Impl* i = impl_;
  impl_ = nullptr;
  i->Close(CancelledError("client destroyed"));
  if (i->depth > 0)
    i->orphaned = true;  // the outermost callback frame defers the delete
  else
    delete i;
}

template <typename F>
static std::shared_ptr<const F> MakeSlot(F cb) {
  if (!cb) return nullptr;
  return std::make_shared<const F>(std::move(cb));
}

void Client::OnOpen(std::function<void()> cb) {
  impl_->on_open = MakeSlot(std::move(cb));
}
void Client::OnEvent(EventCallback cb) {
  impl_->on_event = MakeSlot(std::move(cb));
}
void Client::OnError(StatusCallback cb) {
  impl_->on_error = MakeSlot(std::move(cb));
}
void Client::OnClose(StatusCallback cb) {
  impl_->on_close = MakeSlot(std::move(cb));
}

void Client::On(std::string type, EventCallback cb) {
  if (!cb) {
    impl_->handlers.erase(type);
    return;
  }
  impl_->handlers[std::move(type)] = MakeSlot(std::move(cb));
}

Status Client::Start() {
  if (impl_->close_fired) return FailedPreconditionError("client is closed");
  if (impl_->started) return FailedPreconditionError("client already started");
  impl_->started = true;
  impl_->state = ReadyState::kConnecting;
  timeval now{0, 0};
  evtimer_add(impl_->reconnect_timer, &now);
  return Status::Ok();
}

void Client::Close() { impl_->Close(CancelledError("closed by client")); }

Client::ReadyState Client::ready_state() const { return impl_->state; }
const std::string& Client::last_event_id() const {
  return impl_->parser.last_event_id();
}
std::optional<uint64_t> Client::retry() const { return impl_->parser.retry(); }
std::chrono::milliseconds Client::next_delay() const { return impl_->delay; }
int Client::http_status() const { return impl_->http_status; }
uint64_t Client::attempts() const { return impl_->attempts; }
const std::string& Client::url() const {
  return impl_->endpoints[impl_->current].url;
}

}  // namespace evsse
