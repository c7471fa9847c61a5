// FakeExchange: the adapter seam (evsse/ext/exchange.h) with no HTTP
// library and no socket, for driving the core's subscribe endpoint
// (session_test, poll_session_test). It records what the core answers
// (status, headers, body bytes, End/Abort) and lets a test play the peer:
// hold written bytes as queued (backpressure), drain them (OnDrained), or
// close the connection (OnClosed). It also checks the seam's contract from
// the core's side: nothing after Reply/End/Abort or OnClosed, no header
// after the response began.
#ifndef EVSSE_TESTS_SUPPORT_FAKE_EXCHANGE_H_
#define EVSSE_TESTS_SUPPORT_FAKE_EXCHANGE_H_

#include <event2/buffer.h>
#include <gtest/gtest.h>
#include <strings.h>

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "evsse/ext/exchange.h"

namespace evsse::testing {

class FakeExchange final : public Exchange {
 public:
  explicit FakeExchange(std::string query, Method method = Method::kGet)
      : method_(method), query_(std::move(query)) {}

  // Request side.
  void SetHeader(std::string name, std::string value) {
    request_headers_.emplace_back(std::move(name), std::move(value));
  }
  Method method() const override { return method_; }
  std::string_view method_name() const override {
    return method_ == Method::kGet ? "GET" : "OTHER";
  }
  std::string_view path() const override { return "/events"; }
  std::string_view query() const override { return query_; }
  const char* header(const char* name) const override {
    for (const auto& [k, v] : request_headers_)
      if (strcasecmp(k.c_str(), name) == 0) return v.c_str();
    return nullptr;
  }
  std::string_view body() override { return {}; }
  bool http10() const override { return false; }
  std::string peer() const override { return "fake:1"; }

  void set_listener(ExchangeListener* listener) override {
    listener_ = listener;
  }

  // Response side.
  void AddHeader(const char* name, const char* value) override {
    Use("AddHeader");
    if (started_) ADD_FAILURE() << "AddHeader after Start: " << name;
    headers_.emplace_back(name, value);
  }
  void Reply(int status, const char* reason, std::string_view body) override {
    Use("Reply");
    if (started_) ADD_FAILURE() << "Reply after Start";
    status_ = status;
    reason_ = reason;
    body_.assign(body);
    replied_ = true;
    finished_ = true;
  }
  void Start(int status, const char* reason) override {
    Use("Start");
    if (started_) ADD_FAILURE() << "Start twice";
    status_ = status;
    reason_ = reason;
    started_ = true;
  }
  void Write(evbuffer* data) override {
    Use("Write");
    if (!started_) ADD_FAILURE() << "Write before Start";
    size_t n = evbuffer_get_length(data);
    std::string bytes(n, '\0');
    evbuffer_remove(data, bytes.data(), n);
    body_ += bytes;
    ++writes_;
    if (hold_) queued_ += n;
  }
  size_t queued() const override { return queued_; }
  void End() override {
    Use("End");
    ended_ = true;
    finished_ = true;
  }
  void Abort() override {
    Use("Abort");
    aborted_ = true;
    finished_ = true;
  }

  // The peer. Hold: written bytes stay queued until Drain.
  void Hold(bool hold) { hold_ = hold; }
  void Drain() {
    queued_ = 0;
    if (listener_ && !finished_) listener_->OnDrained();
  }
  void PeerClose() {
    ASSERT_FALSE(finished_);
    ExchangeListener* l = listener_;
    gone_ = true;
    if (l) l->OnClosed();
  }

  // What the core answered.
  int status() const { return status_; }
  const std::string& body_bytes() const { return body_; }
  bool started() const { return started_; }
  bool replied() const { return replied_; }
  bool ended() const { return ended_; }
  bool aborted() const { return aborted_; }
  bool finished() const { return finished_ || gone_; }
  size_t writes() const { return writes_; }
  const char* response_header(const char* name) const {
    for (const auto& [k, v] : headers_)
      if (strcasecmp(k.c_str(), name) == 0) return v.c_str();
    return nullptr;
  }

 private:
  void Use(const char* what) {
    if (finished_) ADD_FAILURE() << what << " after the response finished";
    if (gone_) ADD_FAILURE() << what << " after OnClosed";
  }

  Method method_;
  std::string query_;
  std::vector<std::pair<std::string, std::string>> request_headers_;
  ExchangeListener* listener_ = nullptr;
  std::vector<std::pair<std::string, std::string>> headers_;
  int status_ = 0;
  std::string reason_;
  std::string body_;
  bool started_ = false;
  bool replied_ = false;
  bool ended_ = false;
  bool aborted_ = false;
  bool finished_ = false;
  bool gone_ = false;
  bool hold_ = false;
  size_t queued_ = 0;
  size_t writes_ = 0;
};

}  // namespace evsse::testing

#endif  // EVSSE_TESTS_SUPPORT_FAKE_EXCHANGE_H_
