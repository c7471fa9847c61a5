// Unit tests of evsse::pubsub without sockets: TopicHistory, EventRef and
// the Bus.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "evsse/pubsub/bus.h"
#include "evsse/pubsub/cursor.h"
#include "evsse/pubsub/event.h"
#include "evsse/pubsub/history.h"

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#define EVSSE_TEST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#include <sanitizer/asan_interface.h>
#define EVSSE_TEST_ASAN 1
#endif
#endif

namespace evsse::pubsub {
namespace {

Position P(uint64_t major, uint64_t minor = 0) {
  return Position{major, minor};
}

// MakeEvent returns a new Event (owned by the returned reference).
EventRef MakeEvent(Position p, int64_t published_ms = 0,
                   std::string topic = "t") {
  auto* e = new Event;
  e->topic = std::move(topic);
  e->epoch = 7;
  e->position = p;
  e->published_ms = published_ms;
  e->wire = "data: " + std::to_string(p.major) + "\n\n";
  e->body_size = static_cast<uint32_t>(e->wire.size());
  return EventRef(e);
}

// Majors returns the positions held by `h`, oldest first.
std::vector<uint64_t> Majors(const TopicHistory& h) {
  std::vector<uint64_t> out;
  for (size_t i = 0; i < h.size(); ++i) out.push_back(h[i]->position.major);
  return out;
}

// NaiveFirstAfter is the reference FirstAfter: a linear scan.
size_t NaiveFirstAfter(const TopicHistory& h, Position p) {
  for (size_t i = 0; i < h.size(); ++i)
    if (h[i]->position > p) return i;
  return h.size();
}

// ---------------------------------------------------------------------------
// TopicHistory

TEST(TopicHistoryTest, EmptyHistory) {
  TopicHistory h;
  EXPECT_TRUE(h.empty());
  EXPECT_EQ(h.size(), 0u);
  EXPECT_EQ(h.FirstAfter(P(0)), 0u);
  EXPECT_EQ(h.FirstAfter(P(100)), 0u);
  EXPECT_EQ(h.last(), P(0));
  EXPECT_EQ(h.evicted_up_to(), P(0));
}

TEST(TopicHistoryTest, AppendKeepsOrderAndLast) {
  TopicHistory h;
  h.Append(MakeEvent(P(3)));
  h.Append(MakeEvent(P(7)));
  h.Append(MakeEvent(P(20)));
  EXPECT_FALSE(h.empty());
  EXPECT_EQ(h.size(), 3u);
  EXPECT_EQ(Majors(h), (std::vector<uint64_t>{3, 7, 20}));
  EXPECT_EQ(h.last(), P(20));
  EXPECT_EQ(h.evicted_up_to(), P(0));
}

TEST(TopicHistoryTest, FirstAfterWithGaps) {
  TopicHistory h;
  h.Append(MakeEvent(P(3)));
  h.Append(MakeEvent(P(7)));
  h.Append(MakeEvent(P(20)));
  // Before the first.
  EXPECT_EQ(h.FirstAfter(P(0)), 0u);
  EXPECT_EQ(h.FirstAfter(P(2)), 0u);
  // Exactly on a position: the next one.
  EXPECT_EQ(h.FirstAfter(P(3)), 1u);
  EXPECT_EQ(h.FirstAfter(P(7)), 2u);
  EXPECT_EQ(h.FirstAfter(P(20)), 3u);
  // Inside a gap: the next retained one.
  EXPECT_EQ(h.FirstAfter(P(4)), 1u);
  EXPECT_EQ(h.FirstAfter(P(6)), 1u);
  EXPECT_EQ(h.FirstAfter(P(8)), 2u);
  EXPECT_EQ(h.FirstAfter(P(19)), 2u);
  // After the last.
  EXPECT_EQ(h.FirstAfter(P(21)), 3u);
  EXPECT_EQ(h.FirstAfter(P(UINT64_MAX, UINT64_MAX)), 3u);
}

TEST(TopicHistoryTest, FirstAfterComparesMinor) {
  TopicHistory h;  // Redis-style ids: ms-seq
  h.Append(MakeEvent(P(100, 0)));
  h.Append(MakeEvent(P(100, 1)));
  h.Append(MakeEvent(P(100, 5)));
  h.Append(MakeEvent(P(101, 0)));
  EXPECT_EQ(h.FirstAfter(P(99, 999)), 0u);
  EXPECT_EQ(h.FirstAfter(P(100, 0)), 1u);
  EXPECT_EQ(h.FirstAfter(P(100, 2)), 2u);
  EXPECT_EQ(h.FirstAfter(P(100, 5)), 3u);
  EXPECT_EQ(h.FirstAfter(P(100, 6)), 3u);
  EXPECT_EQ(h.FirstAfter(P(101, 0)), 4u);
}

// Long histories take the binary-search path (the backward walk gives up
// after a few steps); compare every probe with a linear scan.
TEST(TopicHistoryTest, FirstAfterMatchesLinearScanOnLongHistory) {
  TopicHistory h;
  uint64_t pos = 0;
  std::vector<uint64_t> positions;
  for (int i = 0; i < 200; ++i) {
    pos += 1 + static_cast<uint64_t>((i * 7919) % 13);  // gaps of 1..13
    positions.push_back(pos);
    h.Append(MakeEvent(P(pos)));
  }
  for (uint64_t p = 0; p <= pos + 2; ++p) {
    ASSERT_EQ(h.FirstAfter(P(p)), NaiveFirstAfter(h, P(p))) << "p=" << p;
  }
  // And after trimming the front, indexes stay relative to what is kept.
  h.TrimToCount(50);
  for (uint64_t p = 0; p <= pos + 2; ++p) {
    ASSERT_EQ(h.FirstAfter(P(p)), NaiveFirstAfter(h, P(p))) << "p=" << p;
  }
  EXPECT_EQ(h[0]->position.major, positions[150]);
}

TEST(TopicHistoryTest, TrimToCountDropsOldestAndRecordsEviction) {
  TopicHistory h;
  for (uint64_t p : {3, 7, 20, 21, 40}) h.Append(MakeEvent(P(p)));
  h.TrimToCount(10);  // nothing to drop
  EXPECT_EQ(h.size(), 5u);
  EXPECT_EQ(h.evicted_up_to(), P(0));

  h.TrimToCount(3);
  EXPECT_EQ(Majors(h), (std::vector<uint64_t>{20, 21, 40}));
  EXPECT_EQ(h.evicted_up_to(), P(7));
  EXPECT_EQ(h.last(), P(40));
  // A cursor at 3 or 7 is older than what is kept; one at 7 has seen every
  // dropped event, so FirstAfter still finds the right next event.
  EXPECT_EQ(h.FirstAfter(P(7)), 0u);
  EXPECT_EQ(h.FirstAfter(P(20)), 1u);

  h.TrimToCount(0);
  EXPECT_TRUE(h.empty());
  EXPECT_EQ(h.evicted_up_to(), P(40));
  EXPECT_EQ(h.last(), P(40));  // last is kept when everything is dropped
  EXPECT_EQ(h.FirstAfter(P(0)), 0u);

  h.Append(MakeEvent(P(41)));
  EXPECT_EQ(h.size(), 1u);
  EXPECT_EQ(h.evicted_up_to(), P(40));
  EXPECT_EQ(h.last(), P(41));
}

TEST(TopicHistoryTest, TrimOlderThan) {
  TopicHistory h;
  h.Append(MakeEvent(P(3), /*published_ms=*/1000));
  h.Append(MakeEvent(P(7), 1500));
  h.Append(MakeEvent(P(20), 2000));
  h.Append(MakeEvent(P(25), 2000));
  h.Append(MakeEvent(P(30), 2600));

  h.TrimOlderThan(1000);  // nothing is strictly older
  EXPECT_EQ(h.size(), 5u);
  EXPECT_EQ(h.evicted_up_to(), P(0));

  h.TrimOlderThan(1501);
  EXPECT_EQ(Majors(h), (std::vector<uint64_t>{20, 25, 30}));
  EXPECT_EQ(h.evicted_up_to(), P(7));

  h.TrimOlderThan(2000);  // the boundary is kept
  EXPECT_EQ(Majors(h), (std::vector<uint64_t>{20, 25, 30}));

  h.TrimOlderThan(2001);
  EXPECT_EQ(Majors(h), (std::vector<uint64_t>{30}));
  EXPECT_EQ(h.evicted_up_to(), P(25));

  h.TrimOlderThan(1'000'000);
  EXPECT_TRUE(h.empty());
  EXPECT_EQ(h.evicted_up_to(), P(30));
  EXPECT_EQ(h.last(), P(30));
  h.TrimOlderThan(2'000'000);  // on an empty history: no-op
  EXPECT_EQ(h.evicted_up_to(), P(30));
}

// DropAfter: a failover lost the newest events; the history forgets them
// (and that they were there), keeps the accounts, and takes events again
// that sort among the forgotten ones.
TEST(TopicHistoryTest, DropAfterForgetsTheNewestEvents) {
  HistoryMeter meter;
  TopicHistory h(&meter);
  for (uint64_t p = 1; p <= 40; ++p) h.Append(MakeEvent(P(p)));
  h.TrimToCount(30);  // 1..10 evicted
  size_t one = h.bytes() / h.size();
  EXPECT_EQ(h.DropAfter(P(50)), 0u);
  EXPECT_EQ(h.DropAfter(P(12)), 28u);
  EXPECT_EQ(Majors(h), (std::vector<uint64_t>{11, 12}));
  EXPECT_EQ(h.last(), P(12));
  EXPECT_EQ(h.evicted_up_to(), P(10));
  EXPECT_EQ(h.bytes(), 2 * one);
  EXPECT_EQ(meter.events, 2u);
  EXPECT_EQ(meter.bytes, h.bytes());
  h.Append(MakeEvent(P(13)));  // below the forgotten 14..40
  EXPECT_EQ(Majors(h), (std::vector<uint64_t>{11, 12, 13}));
  // Past everything evicted too: both marks come down to it.
  EXPECT_EQ(h.DropAfter(P(5)), 3u);
  EXPECT_TRUE(h.empty());
  EXPECT_EQ(h.last(), P(5));
  EXPECT_EQ(h.evicted_up_to(), P(5));
  EXPECT_EQ(meter.events, 0u);
  EXPECT_EQ(meter.bytes, 0u);
}

TEST(TopicHistoryTest, RaiseFloor) {
  TopicHistory h;
  h.RaiseFloor(P(50));
  EXPECT_TRUE(h.empty());
  EXPECT_EQ(h.last(), P(50));
  EXPECT_EQ(h.evicted_up_to(), P(50));

  // Never lowers either mark.
  h.RaiseFloor(P(10));
  EXPECT_EQ(h.last(), P(50));
  EXPECT_EQ(h.evicted_up_to(), P(50));

  h.Append(MakeEvent(P(60)));
  EXPECT_EQ(h.last(), P(60));
  EXPECT_EQ(h.evicted_up_to(), P(50));
  EXPECT_EQ(h.FirstAfter(P(50)), 0u);

  // Raising below last keeps last, raises the eviction mark only.
  h.RaiseFloor(P(55));
  EXPECT_EQ(h.last(), P(60));
  EXPECT_EQ(h.evicted_up_to(), P(55));
  EXPECT_EQ(h.size(), 1u);  // retained events are not dropped

  // A later eviction below the floor does not lower it.
  h.TrimToCount(0);
  EXPECT_EQ(h.evicted_up_to(), P(60));
}

// ---------------------------------------------------------------------------
// EventRef

TEST(EventRefTest, DefaultIsEmpty) {
  EventRef r;
  EXPECT_FALSE(r);
  EXPECT_EQ(r.get(), nullptr);
  EventRef copy = r;
  EXPECT_FALSE(copy);
  EventRef moved = std::move(r);
  EXPECT_FALSE(moved);
}

TEST(EventRefTest, CopiesShareOneEvent) {
  EventRef a = MakeEvent(P(1));
  const Event* raw = a.get();
  ASSERT_NE(raw, nullptr);
  EventRef b = a;
  EventRef c;
  c = b;
  EXPECT_EQ(b.get(), raw);
  EXPECT_EQ(c.get(), raw);
  EXPECT_EQ(&*c, raw);
  EXPECT_EQ(c->position, P(1));

  // Self-assignment keeps the reference.
  c = c;
  EXPECT_EQ(c.get(), raw);

  // Dropping the original leaves the copies valid (ASan checks the reads).
  a = EventRef();
  EXPECT_FALSE(a);
  EXPECT_EQ(b->wire, "data: 1\n\n");
  b = EventRef();
  EXPECT_EQ(c->topic, "t");
}

TEST(EventRefTest, MoveTransfersWithoutSharing) {
  EventRef a = MakeEvent(P(2));
  const Event* raw = a.get();
  EventRef b = std::move(a);
  EXPECT_FALSE(a);  // NOLINT(bugprone-use-after-move): documented state
  EXPECT_EQ(b.get(), raw);
  EventRef c;
  c = std::move(b);
  EXPECT_EQ(c.get(), raw);
  EXPECT_EQ(c->position, P(2));
}

TEST(EventRefTest, RawPointerCanBeReadopted) {
  // The pattern the session uses with evbuffer_add_reference: Ref by hand,
  // pass the raw pointer on, Unref when the C side lets go.
  EventRef a = MakeEvent(P(3));
  const Event* raw = a.get();
  raw->Ref();
  a = EventRef();
  EventRef again(raw);  // adopts one more reference
  raw->Unref();         // the C side lets go
  EXPECT_EQ(again->position, P(3));
}

TEST(EventRefTest, HistoryHoldsEventsAfterPublisherDropsThem) {
  TopicHistory h;
  {
    EventRef e = MakeEvent(P(9));
    h.Append(e);
    EXPECT_EQ(h[0].get(), e.get());
  }
  EXPECT_EQ(h[0]->wire, "data: 9\n\n");
}

#ifdef EVSSE_TEST_ASAN
// Under ASan a freed block stays poisoned (quarantine), so the moment of
// deletion is observable: the Event goes exactly with its last reference.
TEST(EventRefTest, DeletedExactlyWhenLastReferenceGoes) {
  EventRef a = MakeEvent(P(4));
  const Event* raw = a.get();
  EventRef b = a;
  TopicHistory h;
  h.Append(b);
  a = EventRef();
  EXPECT_FALSE(__asan_address_is_poisoned(raw));
  b = EventRef();
  EXPECT_FALSE(__asan_address_is_poisoned(raw));
  h.TrimToCount(0);  // the last reference
  EXPECT_TRUE(__asan_address_is_poisoned(raw));
}
#endif

TEST(EventRefTest, ConcurrentCopiesAcrossThreads) {
  // Reference counts are atomic: many threads copying and dropping one
  // event neither leak it nor free it early (ASan/TSan builds check).
  EventRef shared = MakeEvent(P(5));
  std::vector<std::thread> threads;
  std::atomic<int> seen{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&shared, &seen] {
      for (int i = 0; i < 10000; ++i) {
        EventRef copy = shared;
        EventRef moved = std::move(copy);
        if (moved->position == P(5)) seen.fetch_add(1);
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(seen.load(), 40000);
  EXPECT_EQ(shared->position, P(5));
}

// ---------------------------------------------------------------------------
// Bus

// Recorder is a listener that keeps what it got.
class Recorder : public Bus::Listener {
 public:
  void OnBusEvent(const EventRef& event, void* token) override {
    std::lock_guard<std::mutex> lock(mu);
    events.push_back(event);
    tokens.push_back(token);
  }
  std::vector<uint64_t> Majors() {
    std::lock_guard<std::mutex> lock(mu);
    std::vector<uint64_t> out;
    for (auto& e : events) out.push_back(e->position.major);
    return out;
  }
  std::mutex mu;
  std::vector<EventRef> events;
  std::vector<void*> tokens;
};

TEST(BusTest, EpochExplicitAndRandom) {
  Bus explicit_epoch(12345);
  EXPECT_EQ(explicit_epoch.epoch(), 12345u);
  Bus a;
  Bus b;
  EXPECT_NE(a.epoch(), 0u);
  EXPECT_NE(b.epoch(), 0u);
  EXPECT_NE(a.epoch(), b.epoch());
  // Random epochs are at most 40 bits, so ids stay short.
  EXPECT_LT(a.epoch(), uint64_t{1} << 40);
  EXPECT_LT(b.epoch(), uint64_t{1} << 40);
}

TEST(BusTest, PositionsIncreaseByOne) {
  Bus bus(1);
  EXPECT_EQ(bus.last(), P(0));
  for (uint64_t i = 1; i <= 5; ++i) {
    EventRef e =
        bus.Publish(i % 2 ? "a" : "b", "body", nullptr, nullptr, nullptr);
    ASSERT_TRUE(e);
    EXPECT_EQ(e->position, P(i));
    EXPECT_EQ(e->epoch, 1u);
    EXPECT_EQ(e->topic, i % 2 ? "a" : "b");
    EXPECT_EQ(bus.last(), P(i));
  }
}

TEST(BusTest, EventCarriesBodyAndFinish) {
  Bus bus(36);
  Recorder r;
  bus.Attach(&r);
  std::vector<uint64_t> finished_at;
  EventRef e = bus.Publish(
      "orders", "data: x\n",
      [&](Event& ev) {
        // finish sees the assigned position, before any listener.
        finished_at.push_back(ev.position.major);
        EXPECT_TRUE(r.events.empty());
        ev.wire += "id: ";
        AppendPosition(ev.wire, {ev.epoch, ev.position});
        ev.wire += "\n\n";
      },
      nullptr, nullptr);
  EXPECT_EQ(finished_at, (std::vector<uint64_t>{1}));
  EXPECT_EQ(e->wire, "data: x\nid: 10.1\n\n");
  EXPECT_EQ(e->body_size, 8u);  // "data: x\n": the body before the id line
  ASSERT_EQ(r.events.size(), 1u);
  EXPECT_EQ(r.events[0].get(), e.get());  // the same object, not a copy
  bus.Detach(&r);
}

TEST(BusTest, EveryListenerGetsEveryEventInOrder) {
  Bus bus;
  Recorder r1, r2, r3;
  bus.Attach(&r1);
  bus.Attach(&r2);
  bus.Attach(&r3);
  for (int i = 0; i < 50; ++i)
    bus.Publish("t" + std::to_string(i % 3), "b", nullptr, nullptr, nullptr);
  std::vector<uint64_t> expected;
  for (uint64_t i = 1; i <= 50; ++i) expected.push_back(i);
  EXPECT_EQ(r1.Majors(), expected);
  EXPECT_EQ(r2.Majors(), expected);
  EXPECT_EQ(r3.Majors(), expected);
  for (size_t i = 0; i < 50; ++i) {
    // One shared Event per publish.
    EXPECT_EQ(r1.events[i].get(), r2.events[i].get());
    EXPECT_EQ(r1.events[i].get(), r3.events[i].get());
  }
  bus.Detach(&r1);
  bus.Detach(&r2);
  bus.Detach(&r3);
}

TEST(BusTest, OnlyTheOriginGetsTheToken) {
  Bus bus;
  Recorder origin, other;
  bus.Attach(&origin);
  bus.Attach(&other);
  int token = 0;
  bus.Publish("a", "b", nullptr, &origin, &token);
  bus.Publish("a", "b", nullptr, &other, &token);
  bus.Publish("a", "b", nullptr, nullptr, &token);  // no origin listener
  ASSERT_EQ(origin.tokens.size(), 3u);
  ASSERT_EQ(other.tokens.size(), 3u);
  EXPECT_EQ(origin.tokens[0], &token);
  EXPECT_EQ(other.tokens[0], nullptr);
  EXPECT_EQ(origin.tokens[1], nullptr);
  EXPECT_EQ(other.tokens[1], &token);
  EXPECT_EQ(origin.tokens[2], nullptr);
  EXPECT_EQ(other.tokens[2], nullptr);
  bus.Detach(&origin);
  bus.Detach(&other);
}

TEST(BusTest, DetachStopsDelivery) {
  Bus bus;
  Recorder kept, gone;
  bus.Attach(&kept);
  bus.Attach(&gone);
  bus.Publish("a", "1", nullptr, nullptr, nullptr);
  bus.Detach(&gone);
  bus.Publish("a", "2", nullptr, nullptr, nullptr);
  bus.Publish("a", "3", nullptr, nullptr, nullptr);
  EXPECT_EQ(gone.Majors(), (std::vector<uint64_t>{1}));
  EXPECT_EQ(kept.Majors(), (std::vector<uint64_t>{1, 2, 3}));
  // Detaching twice, or a listener never attached, is harmless.
  bus.Detach(&gone);
  Recorder never;
  bus.Detach(&never);
  bus.Publish("a", "4", nullptr, nullptr, nullptr);
  EXPECT_EQ(kept.Majors(), (std::vector<uint64_t>{1, 2, 3, 4}));
  EXPECT_TRUE(never.events.empty());
  // Publishing with nobody attached still assigns positions.
  bus.Detach(&kept);
  EventRef e = bus.Publish("a", "5", nullptr, nullptr, nullptr);
  EXPECT_EQ(e->position, P(5));
  EXPECT_EQ(kept.Majors().size(), 4u);
}

TEST(BusTest, ConcurrentPublishersSeeOneGlobalOrder) {
  Bus bus;
  Recorder r1, r2;
  bus.Attach(&r1);
  bus.Attach(&r2);
  constexpr int kThreads = 4;
  constexpr int kEach = 500;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&bus, t] {
      for (int n = 0; n < kEach; ++n)
        bus.Publish("t", std::to_string(t) + ":" + std::to_string(n), nullptr,
                    nullptr, nullptr);
    });
  }
  for (auto& t : threads) t.join();
  std::vector<uint64_t> expected;
  for (uint64_t i = 1; i <= kThreads * kEach; ++i) expected.push_back(i);
  EXPECT_EQ(r1.Majors(), expected);
  EXPECT_EQ(r2.Majors(), expected);
  EXPECT_EQ(bus.last(), P(kThreads * kEach));
  // Each publisher's own events keep their order.
  std::vector<int> next(kThreads, 0);
  for (const EventRef& e : r1.events) {
    size_t colon = e->wire.find(':');
    int t = std::stoi(e->wire.substr(0, colon));
    int n = std::stoi(e->wire.substr(colon + 1));
    EXPECT_EQ(n, next[t]) << "thread " << t;
    next[t] = n + 1;
  }
  EXPECT_EQ(next, std::vector<int>(kThreads, kEach));
  bus.Detach(&r1);
  bus.Detach(&r2);
}

}  // namespace
}  // namespace evsse::pubsub
