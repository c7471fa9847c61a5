// The heap a subscriber that stopped reading holds: about max_queued_bytes,
// not a libevent block per write (module/common/packed_append.h). Small
// events, one fan-out and one write each (the worst case: before the
// packing, each write held a block of 1 KiB or more, about 6.5x
// max_queued_bytes at these 150-byte events). Measured with glibc's
// mallinfo2, so not under sanitizers (their allocators do not report
// there). On both adapters.
#include <event2/event.h>
#include <gtest/gtest.h>
#include <malloc.h>

#include <chrono>
#include <string>

#include "http_fixture.h"

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define EVSSE_TEST_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define EVSSE_TEST_SANITIZED 1
#endif
#endif
#ifndef EVSSE_TEST_SANITIZED
#define EVSSE_TEST_SANITIZED 0
#endif

namespace evsse::testing {
namespace {

using std::chrono::milliseconds;

class SlowReaderMemoryTest : public OnEveryAdapter<HttpFixture> {
 protected:
  // PublishAll publishes `count` events of `payload` to `topic`, running
  // the loop after each (one fan-out, one write per subscriber), and
  // returns how much the heap in use grew.
  long PublishAll(const char* topic, const std::string& payload, int count) {
    size_t before = mallinfo2().uordblks;
    for (int i = 0; i < count; ++i) {
      EXPECT_TRUE(hub_->Publish(topic, {"", payload}).ok());
      event_base_loop(base_, EVLOOP_NONBLOCK);
    }
    RunFor(milliseconds(100));
    return static_cast<long>(mallinfo2().uordblks) - static_cast<long>(before);
  }
};

TEST_P(SlowReaderMemoryTest, AStoppedReaderHoldsAboutMaxQueuedBytesOfHeap) {
  if (EVSSE_TEST_SANITIZED) GTEST_SKIP() << "mallinfo2 is not the heap here";
  constexpr long kQueue = 1 << 20;
  HubOptions ho;
  ho.history_max_events = 200000;        // never a slow-consumer close
  ho.coalesce_window = milliseconds(0);  // one write per event
  StreamOptions so;
  so.max_queued_bytes = kQueue;
  so.write_stall_timeout = milliseconds(120000);
  so.heartbeat = milliseconds(0);
  StartServer(ho, so);
  auto mute = Get("/events?topic=a");
  ASSERT_TRUE(RunUntil([&] { return mute->retry.has_value(); }));
  mute->StopReading();  // a 4 KiB receive buffer, never read again

  // About 7.5 MiB on the wire: past what loopback's kernel buffers take
  // (a few MiB), then max_queued_bytes in evsse's queue.
  const std::string payload(120, 'p');
  constexpr int kEvents = 50000;
  long history_only = PublishAll("b", payload, kEvents);  // nobody reads b
  long with_reader = PublishAll("a", payload, kEvents);
  long held = with_reader - history_only;
  std::printf(
      "heap: history %ld B; history + the stopped reader %ld B; "
      "the reader %ld B (max_queued_bytes %ld)\n",
      history_only, with_reader, held, kQueue);
  EXPECT_EQ(hub_->stats().connections_active, 1u);
  EXPECT_EQ(hub_->stats().stall_closes, 0u);
  // Its queue did fill (else the kernel took everything and this measured
  // nothing), and costs about its size.
  EXPECT_GT(held, kQueue * 9 / 10);
  EXPECT_LT(held, kQueue * 3 / 2);
}

INSTANTIATE_TEST_SUITE_P(Adapters, SlowReaderMemoryTest, EveryAdapter(),
                         AdapterName);

}  // namespace
}  // namespace evsse::testing
