// The HTTP publish endpoint, for producers that are not C++: POST the data,
// get the assigned id back.
#include <strings.h>

#include "hub_impl.h"
#include "request.h"

namespace evsse::internal {
namespace {

// ConstantTimeEquals compares without an early exit, so response timing
// does not reveal how much of a guessed token was right.
bool ConstantTimeEquals(std::string_view a, std::string_view b) {
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  size_t n = a.size() < b.size() ? a.size() : b.size();
  for (size_t i = 0; i < n; ++i)
    diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  // Touch the longer tail too, so the time depends on the input length only.
  for (size_t i = n; i < b.size(); ++i)
    diff |= static_cast<unsigned char>(b[i]);
  return diff == 0;
}

void ReplyText(Exchange* ex, int status, const char* reason,
               const std::string& message) {
  ex->AddHeader("Content-Type", "text/plain; charset=utf-8");
  ex->AddHeader("Cache-Control", "no-store");
  ex->Reply(status, reason, message + "\n");
}

class TopicsView final : public Request {
 public:
  TopicsView(Exchange* ex, const QueryParams& q, std::vector<std::string> t)
      : ex_(ex), q_(q), topics_(std::move(t)) {}
  std::string_view method() const override { return ex_->method_name(); }
  std::string_view path() const override { return ex_->path(); }
  const char* header(const char* name) const override {
    return ex_->header(name);
  }
  std::optional<std::string> query(std::string_view key) const override {
    auto v = FindParam(q_, key);
    if (!v) return std::nullopt;
    return std::string(*v);
  }
  const std::vector<std::string>& topics() const override { return topics_; }
  std::string peer() const override { return ex_->peer(); }

 private:
  Exchange* ex_;
  const QueryParams& q_;
  std::vector<std::string> topics_;
};

// PendingReply waits for the Hub to assign the id. The client may go away
// first; the Hub's callback fires exactly once either way.
class PendingReply final : public ExchangeListener {
 public:
  explicit PendingReply(Exchange* ex) : ex_(ex) { ex_->set_listener(this); }
  void OnDrained() override {}
  void OnClosed() override { ex_ = nullptr; }
  void Done(Result<std::string> id) {
    if (ex_) {
      if (id.ok()) {
        ex_->AddHeader("Content-Type", "application/json");
        ex_->AddHeader("Cache-Control", "no-store");
        ex_->Reply(200, "OK", "{\"id\":\"" + *id + "\"}\n");
      } else if (id.status().code() == StatusCode::kUnknown) {
        // Sent to Redis, answer lost: it may be stored. 503 would say "not
        // published, retry"; 504 says "check before you retry".
        ReplyText(ex_, 504, "Gateway Timeout", id.status().message());
      } else if (id.status().code() == StatusCode::kInvalidArgument) {
        // The store refused the topic itself (e.g. a Kafka topic name with
        // a bad partition): retrying cannot help.
        ReplyText(ex_, 400, "Bad Request", id.status().message());
      } else {
        ReplyText(ex_, 503, "Service Unavailable", id.status().message());
      }
    }
    delete this;
  }

 private:
  Exchange* ex_;
};

}  // namespace

PublishEndpoint::PublishEndpoint(HubImpl* hub, PublishOptions options)
    : hub_(hub), options_(std::move(options)) {}

void PublishEndpoint::Handle(Exchange* ex) {
  if (ex->method() != Method::kPost) {
    ex->AddHeader("Allow", "POST");
    return ReplyText(ex, 405, "Method Not Allowed",
                     "method not allowed: use POST");
  }
  if (!options_.bearer_token.empty()) {
    const char* auth = ex->header("Authorization");
    std::string_view given = auth ? auth : "";
    constexpr std::string_view kBearer = "Bearer ";
    bool ok =
        given.size() > kBearer.size() &&
        strncasecmp(given.data(), "Bearer ", kBearer.size()) == 0 &&
        ConstantTimeEquals(given.substr(kBearer.size()), options_.bearer_token);
    if (!ok) {
      ex->AddHeader("WWW-Authenticate", "Bearer realm=\"evsse\"");
      return ReplyText(ex, 401, "Unauthorized",
                       auth ? "invalid bearer token"
                            : "missing Authorization: Bearer <token>");
    }
  }
  auto q = ParseQuery(ex->query());
  if (!q.ok()) return ReplyText(ex, 400, "Bad Request", q.status().message());
  std::vector<std::string> topics;
  for (auto& [k, v] : *q)
    if (k == "topic") topics.push_back(v);
  if (topics.size() != 1)
    return ReplyText(ex, 400, "Bad Request",
                     topics.empty() ? "missing topic parameter"
                                    : "exactly one topic parameter expected");
  // Validate before the hook: it must only ever see well-formed names.
  if (Status st = ValidateTopic(topics[0], hub_->options().max_topic_length);
      !st.ok())
    return ReplyText(ex, 400, "Bad Request", st.message());
  if (options_.auth) {
    AuthDecision d = hub_->Authorize(options_.auth, TopicsView(ex, *q, topics));
    if (d.status != 200) {
      for (auto& [k, v] : d.headers) ex->AddHeader(k.c_str(), v.c_str());
      return d.status == 401
                 ? ReplyText(ex, 401, "Unauthorized",
                             d.message.empty() ? "unauthorized" : d.message)
                 : ReplyText(ex, 403, "Forbidden",
                             d.message.empty() ? "forbidden" : d.message);
    }
  }
  std::string_view body = ex->body();
  if (body.size() > options_.max_body_bytes)
    return ReplyText(ex, 413, "Payload Too Large",
                     "body is " + std::to_string(body.size()) +
                         " bytes; the limit is " +
                         std::to_string(options_.max_body_bytes));
  Message m;
  if (auto type = FindParam(*q, "event")) m.type = std::string(*type);
  m.data.assign(body.data(), body.size());
  auto* pending = new PendingReply(ex);
  Status s = hub_->Publish(
      topics[0], std::move(m),
      [pending](Result<std::string> id) { pending->Done(std::move(id)); });
  if (!s.ok()) {
    ex->set_listener(nullptr);
    delete pending;
    int code = s.code() == StatusCode::kOutOfRange ? 413 : 400;
    return ReplyText(ex, code,
                     code == 413 ? "Payload Too Large" : "Bad Request",
                     s.message());
  }
}

}  // namespace evsse::internal
