// FetchShare (module/core/fetch_share.h) against a scripted Backend whose
// fetches are answered by the test: identical requests share one fetch,
// every Done fires exactly once (also on failure, cancel and destruction),
// answers never come inside the call, and the cache is bounded and dropped
// when the Hub says so.
#include "fetch_share.h"

#include <event2/event.h>
#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "hub_impl.h"

namespace evsse::internal {
namespace {

using pubsub::Position;
using std::chrono::milliseconds;

class ScriptedBackend final : public Backend {
 public:
  struct Call {
    std::string topic;
    Position after, until;
    size_t limit;
    FetchDone done;
  };
  BackendStats backend_stats() const override { return {}; }
  void Publish(const std::string&, std::string_view, std::string_view,
               PublishDone) override {}
  void Watch(const std::string&) override {}
  void Unwatch(const std::string&) override {}
  void Fetch(const std::string& topic, Position after, Position until,
             size_t limit, FetchDone done) override {
    calls.push_back({topic, after, until, limit, std::move(done)});
  }
  // Answer replies to call i with events after+1 .. after+n.
  void Answer(size_t i, size_t n, uint64_t epoch = 7, bool more = false) {
    FetchResult r;
    r.epoch = epoch;
    r.more = more;
    for (size_t k = 1; k <= n; ++k)
      r.events.push_back({{calls[i].after.major + k, 0}, "", "e"});
    calls[i].done(std::move(r));
  }
  std::vector<Call> calls;
};

struct Outcome {
  int calls = 0;
  Result<PageRef> page = InternalError("none");
};

class FetchShareTest : public ::testing::Test {
 protected:
  void SetUp() override { base_ = event_base_new(); }
  void TearDown() override {
    share_.reset();
    event_base_free(base_);
  }
  void Make(size_t max_bytes = 1 << 20, Millis ttl = milliseconds(60000)) {
    share_ = std::make_unique<FetchShare>(base_, &HubImpl::MakeEvent, max_bytes,
                                          ttl);
  }
  void Ask(Outcome* out, Position after, Position until, size_t limit = 10,
           const std::string& topic = "t") {
    share_->Fetch(&backend_, topic, after, until, limit,
                  [out](Result<PageRef> r) {
                    ++out->calls;
                    out->page = std::move(r);
                  });
  }
  void Loop() { event_base_loop(base_, EVLOOP_NONBLOCK); }

  event_base* base_ = nullptr;
  ScriptedBackend backend_;
  std::unique_ptr<FetchShare> share_;
};

TEST_F(FetchShareTest, IdenticalRequestsShareOneFetchAndOneEncoding) {
  Make();
  std::vector<Outcome> out(5);
  for (Outcome& o : out) Ask(&o, {100, 0}, {200, 0});
  ASSERT_EQ(backend_.calls.size(), 1u);
  EXPECT_EQ(share_->fetches(), 1u);
  EXPECT_EQ(share_->joined(), 4u);
  backend_.Answer(0, 3, 7, true);
  for (Outcome& o : out) EXPECT_EQ(o.calls, 0);  // never inside the reply
  Loop();
  for (Outcome& o : out) {
    EXPECT_EQ(o.calls, 1);
    ASSERT_TRUE(o.page.ok());
    EXPECT_EQ(o.page->get(), out[0].page->get());  // one page for all
  }
  const Page& p = **out[0].page;
  EXPECT_EQ(p.epoch, 7u);
  EXPECT_TRUE(p.more);
  ASSERT_EQ(p.events.size(), 3u);
  EXPECT_EQ(p.events[0]->position, (Position{101, 0}));
  EXPECT_EQ(p.events[0]->epoch, 7u);
  EXPECT_EQ(p.events[0]->topic, "t");
  Loop();
  for (Outcome& o : out) EXPECT_EQ(o.calls, 1);
}

TEST_F(FetchShareTest, RecentPagesAreServedFromTheCacheLater) {
  Make();
  Outcome first, later, shorter, longer, other_start, other_topic, bigger;
  Ask(&first, {100, 0}, {200, 0});
  backend_.Answer(0, 2);
  Loop();
  Ask(&later, {100, 0}, {200, 0});
  Ask(&shorter, {100, 0}, {150, 0});  // a range inside the page's
  EXPECT_EQ(later.calls, 0);          // deferred even from the cache
  Loop();
  EXPECT_EQ(later.calls, 1);
  EXPECT_EQ(shorter.calls, 1);
  EXPECT_EQ(later.page->get(), first.page->get());
  EXPECT_EQ(shorter.page->get(), first.page->get());
  EXPECT_EQ(backend_.calls.size(), 1u);
  EXPECT_EQ(share_->cache_hits(), 2u);
  // Not the same request: a longer range, another start, another topic, a
  // larger limit.
  Ask(&longer, {100, 0}, {300, 0});
  Ask(&other_start, {101, 0}, {200, 0});
  Ask(&other_topic, {100, 0}, {200, 0}, 10, "u");
  Ask(&bigger, {100, 0}, {200, 0}, 11);
  EXPECT_EQ(backend_.calls.size(), 5u);
  EXPECT_EQ(backend_.calls[2].after, (Position{101, 0}));
  EXPECT_EQ(backend_.calls[3].topic, "u");
  EXPECT_EQ(backend_.calls[4].limit, 11u);
  for (size_t i = 1; i < 5; ++i) backend_.Answer(i, 1);
  Loop();
  for (Outcome* o : {&longer, &other_start, &other_topic, &bigger})
    EXPECT_EQ(o->calls, 1);
  EXPECT_EQ(share_->requests(), 7u);
  EXPECT_EQ(share_->shared(), 2u);
}

TEST_F(FetchShareTest, FailureReachesEveryWaiterAndIsNotCached) {
  Make();
  std::vector<Outcome> out(3);
  for (Outcome& o : out) Ask(&o, {1, 0}, {9, 0});
  backend_.calls[0].done(UnavailableError("link down"));
  Loop();
  for (Outcome& o : out) {
    EXPECT_EQ(o.calls, 1);
    EXPECT_EQ(o.page.status().code(), StatusCode::kUnavailable);
  }
  Outcome again;
  Ask(&again, {1, 0}, {9, 0});
  EXPECT_EQ(backend_.calls.size(), 2u);  // asked again, not cached
  EXPECT_EQ(share_->cached_pages(), 0u);
  backend_.Answer(1, 1);
  Loop();
  EXPECT_EQ(again.calls, 1);
  EXPECT_TRUE(again.page.ok());
}

TEST_F(FetchShareTest, ClearWhileInFlightAnswersWaitersButIsNotJoinedOrKept) {
  Make();
  Outcome a, b, c;
  Ask(&a, {1, 0}, {9, 0});
  share_->Clear();  // the link dropped
  Ask(&b, {1, 0}, {9, 0});
  ASSERT_EQ(backend_.calls.size(), 2u);  // b did not join a's fetch
  backend_.Answer(0, 4);
  Loop();
  EXPECT_EQ(a.calls, 1);
  ASSERT_TRUE(a.page.ok());
  EXPECT_EQ(share_->cached_pages(), 0u);  // a's page predates the drop
  backend_.Answer(1, 4);
  Loop();
  EXPECT_EQ(b.calls, 1);
  EXPECT_EQ(share_->cached_pages(), 1u);
  Ask(&c, {1, 0}, {9, 0});
  Loop();
  EXPECT_EQ(c.calls, 1);
  EXPECT_EQ(c.page->get(), b.page->get());
}

TEST_F(FetchShareTest, DropTopicForgetsOnlyThatTopic) {
  Make();
  Outcome t1, u1, t2, u2;
  Ask(&t1, {1, 0}, {9, 0}, 10, "t");
  Ask(&u1, {1, 0}, {9, 0}, 10, "u");
  backend_.Answer(0, 1);
  backend_.Answer(1, 1);
  Loop();
  EXPECT_EQ(share_->cached_pages(), 2u);
  share_->DropTopic("t");  // t's stream got a new epoch
  Ask(&t2, {1, 0}, {9, 0}, 10, "t");
  Ask(&u2, {1, 0}, {9, 0}, 10, "u");
  EXPECT_EQ(backend_.calls.size(), 3u);
  EXPECT_EQ(backend_.calls[2].topic, "t");
  backend_.Answer(2, 1, 8);
  Loop();
  EXPECT_EQ(t2.calls, 1);
  EXPECT_EQ((*t2.page)->epoch, 8u);
  EXPECT_EQ(u2.page->get(), u1.page->get());
}

TEST_F(FetchShareTest, CacheIsBoundedInBytesAndAge) {
  Make(/*max_bytes=*/1500, /*ttl=*/milliseconds(20));
  Outcome a, b, big;
  Ask(&a, {1, 0}, {99, 0});
  backend_.Answer(0, 5);  // about 5 x 116 bytes
  Ask(&b, {2, 0}, {99, 0});
  backend_.Answer(1, 5);
  Loop();
  EXPECT_EQ(share_->cached_pages(), 2u);
  EXPECT_LE(share_->cached_bytes(), 1500u);
  Ask(&big, {3, 0}, {99, 0}, 100);
  backend_.Answer(2, 50);  // larger than the whole budget: not kept
  Loop();
  EXPECT_EQ(big.calls, 1);
  ASSERT_TRUE(big.page.ok());
  EXPECT_EQ((*big.page)->events.size(), 50u);
  EXPECT_EQ(share_->cached_pages(), 2u);
  // A third small page pushes the oldest out.
  Outcome c;
  Ask(&c, {4, 0}, {99, 0});
  backend_.Answer(3, 5);
  Loop();
  EXPECT_LE(share_->cached_bytes(), 1500u);
  Outcome a2;
  Ask(&a2, {1, 0}, {99, 0});
  EXPECT_EQ(backend_.calls.size(), 5u);  // a's page was evicted
  backend_.Answer(4, 5);
  // Past the age bound every page is gone, by the timer alone.
  std::this_thread::sleep_for(milliseconds(60));
  Loop();
  EXPECT_EQ(share_->cached_pages(), 0u);
  EXPECT_EQ(share_->cached_bytes(), 0u);
  EXPECT_EQ(a2.calls, 1);
}

TEST_F(FetchShareTest, DestructionCancelsEveryWaiterExactlyOnce) {
  Make();
  std::vector<Outcome> flying(3), deferred(2);
  for (Outcome& o : flying) Ask(&o, {1, 0}, {9, 0});
  Outcome seed;
  Ask(&seed, {5, 0}, {9, 0});
  backend_.Answer(1, 1);  // answered, but not yet delivered
  for (Outcome& o : deferred) Ask(&o, {5, 0}, {9, 0});
  share_.reset();
  for (Outcome& o : flying) {
    EXPECT_EQ(o.calls, 1);
    EXPECT_EQ(o.page.status().code(), StatusCode::kCancelled);
  }
  EXPECT_EQ(seed.calls, 1);
  for (Outcome& o : deferred) EXPECT_EQ(o.calls, 1);
  backend_.Answer(0, 2);  // a reply after destruction is dropped
  Loop();
  for (Outcome& o : flying) EXPECT_EQ(o.calls, 1);
}

TEST_F(FetchShareTest, AWaiterMayFetchAgainFromItsCallback) {
  Make();
  Outcome next;
  int first_calls = 0;
  share_->Fetch(&backend_, "t", {1, 0}, {99, 0}, 2, [&](Result<PageRef> r) {
    ++first_calls;
    ASSERT_TRUE(r.ok());
    Ask(&next, (*r)->events.back()->position, {99, 0}, 2);
  });
  backend_.Answer(0, 2, 7, true);
  Loop();
  EXPECT_EQ(first_calls, 1);
  ASSERT_EQ(backend_.calls.size(), 2u);
  EXPECT_EQ(backend_.calls[1].after, (Position{3, 0}));
  backend_.Answer(1, 1);
  Loop();
  EXPECT_EQ(next.calls, 1);
}

}  // namespace
}  // namespace evsse::internal
