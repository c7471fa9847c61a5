// HTTP plumbing of the application's own routes: replies, the access log
// line of each, query parsing, and replies that wait for the Hub.
#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include <cstring>

#include "app.h"

namespace alerts {
namespace {

const char* Reason(int status) {
  switch (status) {
    case 200:
      return "OK";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 413:
      return "Payload Too Large";
    case 415:
      return "Unsupported Media Type";
    case 503:
      return "Service Unavailable";
    case 504:
      return "Gateway Timeout";
    default:
      return status < 500 ? "Error" : "Internal Server Error";
  }
}

const char* MethodName(evhttp_request* req) {
  switch (evhttp_request_get_command(req)) {
    case EVHTTP_REQ_GET:
      return "GET";
    case EVHTTP_REQ_POST:
      return "POST";
    case EVHTTP_REQ_HEAD:
      return "HEAD";
    case EVHTTP_REQ_PUT:
      return "PUT";
    case EVHTTP_REQ_DELETE:
      return "DELETE";
    case EVHTTP_REQ_OPTIONS:
      return "OPTIONS";
    case EVHTTP_REQ_PATCH:
      return "PATCH";
    default:
      return "OTHER";
  }
}

// RedactQuery keeps the raw query but replaces the value of access_token
// (a subscriber secret) wherever it appears.
std::string RedactQuery(std::string_view q) {
  std::string out;
  while (!q.empty()) {
    size_t amp = q.find('&');
    std::string_view part = q.substr(0, amp);
    size_t eq = part.find('=');
    std::string_view key = part.substr(0, eq);
    if (!out.empty()) out += '&';
    if (key == "access_token" && eq != std::string_view::npos) {
      out += "access_token=REDACTED";
    } else {
      out += part;
    }
    if (amp == std::string_view::npos) break;
    q.remove_prefix(amp + 1);
  }
  return out;
}

}  // namespace

RequestInfo Describe(evhttp_request* req) {
  RequestInfo info;
  info.method = MethodName(req);
  const evhttp_uri* uri = evhttp_request_get_evhttp_uri(req);
  const char* path = uri ? evhttp_uri_get_path(uri) : nullptr;
  const char* query = uri ? evhttp_uri_get_query(uri) : nullptr;
  info.path = path ? path : "";
  if (query && *query) info.path += "?" + RedactQuery(query);
  if (info.path.size() > 512) info.path.resize(512);
  if (evhttp_connection* conn = evhttp_request_get_connection(req)) {
    char* addr = nullptr;
    ev_uint16_t port = 0;
    evhttp_connection_get_peer(conn, &addr, &port);
    info.peer = std::string(addr ? addr : "") + ":" + std::to_string(port);
  }
  return info;
}

void Reply(evhttp_request* req, const RequestInfo& info, int status,
           std::string_view content_type, std::string_view body,
           std::initializer_list<std::pair<const char*, std::string>> headers) {
  evkeyvalq* out = evhttp_request_get_output_headers(req);
  std::string type(content_type);
  evhttp_add_header(out, "Content-Type", type.c_str());
  evhttp_add_header(out, "Cache-Control", "no-store");
  evhttp_add_header(out, "X-Content-Type-Options", "nosniff");
  for (auto& [name, value] : headers)
    evhttp_add_header(out, name, value.c_str());
  evbuffer* buf = evbuffer_new();
  evbuffer_add(buf, body.data(), body.size());
  evhttp_send_reply(req, status, Reason(status), buf);
  evbuffer_free(buf);
  double ms =
      std::chrono::duration<double, std::milli>(Clock::now() - info.start)
          .count();
  char dur[32];
  std::snprintf(dur, sizeof dur, "%.2f", ms);
  Log(evsse::LogLevel::kInfo, "request",
      {{"method", info.method},
       {"path", info.path},
       {"status", std::to_string(status)},
       {"dur_ms", dur},
       {"bytes", std::to_string(body.size())},
       {"peer", info.peer}});
}

void ReplyJson(
    evhttp_request* req, const RequestInfo& info, int status, const Json& body,
    std::initializer_list<std::pair<const char*, std::string>> headers) {
  Reply(req, info, status, "application/json", body.dump() + "\n", headers);
}

void ReplyError(
    evhttp_request* req, const RequestInfo& info, int status,
    const std::string& message,
    std::initializer_list<std::pair<const char*, std::string>> headers) {
  Json j;
  j["error"] = message;
  ReplyJson(req, info, status, j, headers);
}

bool Query(evhttp_request* req, Params* out) {
  out->clear();
  const evhttp_uri* uri = evhttp_request_get_evhttp_uri(req);
  const char* q = uri ? evhttp_uri_get_query(uri) : nullptr;
  if (!q || !*q) return true;
  evkeyvalq params;
  params.tqh_first = nullptr;
  params.tqh_last = &params.tqh_first;
  if (evhttp_parse_query_str(q, &params) != 0) {
    evhttp_clear_headers(&params);
    return false;
  }
  for (evkeyval* kv = params.tqh_first; kv; kv = kv->next.tqe_next)
    out->emplace_back(kv->key, kv->value);
  evhttp_clear_headers(&params);
  return true;
}

std::vector<std::string> Values(const Params& params, std::string_view key) {
  std::vector<std::string> out;
  for (auto& [k, v] : params)
    if (k == key) out.push_back(v);
  return out;
}

std::string Body(evhttp_request* req) {
  evbuffer* in = evhttp_request_get_input_buffer(req);
  size_t n = evbuffer_get_length(in);
  std::string body(n, '\0');
  if (n) evbuffer_copyout(in, body.data(), n);
  return body;
}

PendingReply::PendingReply(evhttp_request* req, RequestInfo info)
    : req_(req), conn_(evhttp_request_get_connection(req)), info_(info) {
  if (conn_) evhttp_connection_set_closecb(conn_, &PendingReply::OnClose, this);
}

PendingReply::~PendingReply() {
  // Every path answers before the last reference goes; this is the net.
  if (req_) Error(500, "internal error: no answer");
}

// libevent 2.1: on a peer EOF the request still being answered is detached
// from its connection and becomes ours to free; when the server frees the
// connection (evhttp_free), the request is still attached and libevent frees
// it. Either way, it must not be touched again.
void PendingReply::OnClose(evhttp_connection*, void* arg) {
  auto* self = static_cast<PendingReply*>(arg);
  if (self->req_ && !evhttp_request_get_connection(self->req_))
    evhttp_request_free(self->req_);
  self->req_ = nullptr;
  self->conn_ = nullptr;
}

void PendingReply::Json(int status, const alerts::Json& body) {
  if (!req_) {
    Log(evsse::LogLevel::kInfo, "request",
        {{"method", info_.method},
         {"path", info_.path},
         {"status", "499"},
         {"note", "client closed before the answer"},
         {"peer", info_.peer}});
    return;
  }
  if (conn_) evhttp_connection_set_closecb(conn_, nullptr, nullptr);
  evhttp_request* req = req_;
  req_ = nullptr;
  ReplyJson(req, info_, status, body);
}

void PendingReply::Error(int status, const std::string& message) {
  alerts::Json j;
  j["error"] = message;
  Json(status, j);
}

}  // namespace alerts
