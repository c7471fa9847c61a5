// Session: one open event stream (session.cc). Loop thread only.
#ifndef EVSSE_CORE_SESSION_H_
#define EVSSE_CORE_SESSION_H_

#include <cstddef>
#include <cstdint>
#include <optional>
#include <vector>

#include "evsse/ext/exchange.h"
#include "evsse/pubsub/cursor.h"
#include "lists.h"
#include "subscription.h"

namespace evsse::internal {

struct HeartbeatTag;
struct StallTag;

// Session: one open event stream. Its response starts at once (in backend
// mode a fresh stream first waits for its topics' tails), then carries the
// replay in batches that follow the drain and the live events up to the
// queue's high watermark, heartbeats while idle, and ends by max_lifetime,
// a stall, a slow reader or a shutdown (see Close). Where it resumes and
// what it shares with a poll: Subscription.
class Session final : public Subscription,
                      public Link<HeartbeatTag>,
                      public Link<StallTag> {
 public:
  Session(StreamEndpoint* endpoint, Exchange* exchange);
  ~Session() override;

  // Pump writes events after the cursor: all of them when live, one batch
  // when catching up.
  void Pump() override;
  void Heartbeat();
  void Close(CloseReason reason) override;

  void OnDrained() override;

 private:
  void Opening(bool wait_for_tail) override;
  void Resumed() override;
  void OnTimer() override;  // max_lifetime
  // Collect appends up to `budget` bytes of events to the hub's scratch
  // buffer; returns false if the stream lost events (fell out of history).
  bool Collect(size_t budget, size_t* events, bool* caught_up);
  void FetchWhereBlocked();
  void StartStream();
  void AfterWrite(size_t events);
};

}  // namespace evsse::internal

#endif  // EVSSE_CORE_SESSION_H_
