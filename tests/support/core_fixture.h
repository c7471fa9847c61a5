// CoreFixture: a Hub with one subscribe endpoint on a bare event loop,
// driven through FakeExchange (no HTTP server, no socket), optionally over
// the fake store (fake_backend.h). Shared by session_test (the stream) and
// poll_session_test (the polling fallback).
#ifndef EVSSE_TESTS_SUPPORT_CORE_FIXTURE_H_
#define EVSSE_TESTS_SUPPORT_CORE_FIXTURE_H_

#include <event2/event.h>
#include <gtest/gtest.h>

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "evsse/hub.h"
#include "evsse/options.h"
#include "fake_backend.h"
#include "fake_exchange.h"
#include "run_loop.h"

namespace evsse::testing {

// A generous bound only a broken test reaches; every wait is on a condition.
constexpr std::chrono::milliseconds kWait{10000};

inline bool Contains(const std::string& s, const std::string& part) {
  return s.find(part) != std::string::npos;
}

class CoreFixture : public ::testing::Test {
 protected:
  CoreFixture() : base_(event_base_new()) {}
  ~CoreFixture() override {
    backend_.reset();  // detaches itself from the Hub
    hub_.reset();
    event_base_free(base_);
  }

  // Start makes the Hub and one stream endpoint.
  void Start(HubOptions hub_options = {}, StreamOptions options = {}) {
    auto hub = Hub::Create(base_, std::move(hub_options));
    ASSERT_TRUE(hub.ok()) << hub.status().message();
    hub_ = std::move(hub).value();
    options.retry_jitter = Millis(0);
    auto ep = hub_->AddStreamEndpoint(std::move(options));
    ASSERT_TRUE(ep.ok()) << ep.status().message();
    endpoint_ = *ep;
  }

  // Make makes an exchange the fixture owns: like an adapter's, it
  // outlives the Hub's use of it (the Hub goes first, in ~CoreFixture).
  FakeExchange* Make(std::string query, Method method = Method::kGet) {
    exchanges_.push_back(
        std::make_unique<FakeExchange>(std::move(query), method));
    return exchanges_.back().get();
  }

  // Open hands an EventSource-like request to the endpoint. A `held`
  // peer reads nothing: what the core writes stays queued until Drain.
  FakeExchange* Open(std::string query, const char* last_event_id = nullptr,
                     bool held = false) {
    FakeExchange* ex = Make(std::move(query));
    ex->SetHeader("Accept", "text/event-stream");
    if (last_event_id) ex->SetHeader("Last-Event-ID", last_event_id);
    ex->Hold(held);
    endpoint_->Handle(ex);
    return ex;
  }

  // Poll hands the endpoint a request of the polling fallback:
  // ?transport=poll&<query>.
  FakeExchange* Poll(const std::string& query) {
    FakeExchange* ex = Make("transport=poll&" + query);
    endpoint_->Handle(ex);
    return ex;
  }

  // AttachBackend puts the Hub in backend mode over the fake store (Start
  // first).
  void AttachBackend() {
    backend_ = std::make_unique<FakeBackend>(&store_, base_, hub_.get());
  }

  // Publish publishes and waits until the event is in the history; returns
  // its id.
  std::string Publish(const std::string& topic, Message m) {
    bool done = false;
    std::string id;
    Status s = hub_->Publish(topic, std::move(m), [&](Result<std::string> r) {
      EXPECT_TRUE(r.ok());
      if (r.ok()) id = *r;
      done = true;
    });
    EXPECT_TRUE(s.ok()) << s.message();
    EXPECT_TRUE(RunLoopUntil(
        base_, [&] { return done; }, kWait));
    return id;
  }

  bool RunUntil(const std::function<bool()>& pred) {
    return RunLoopUntil(base_, pred, kWait);
  }

  event_base* base_;
  std::unique_ptr<Hub> hub_;
  Handler* endpoint_ = nullptr;
  std::vector<std::unique_ptr<FakeExchange>> exchanges_;
  FakeStore store_;
  std::unique_ptr<FakeBackend> backend_;
};

}  // namespace evsse::testing

#endif  // EVSSE_TESTS_SUPPORT_CORE_FIXTURE_H_
