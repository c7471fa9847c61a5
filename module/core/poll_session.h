// PollSession: one request of the polling fallback, ?transport=poll
// (poll_session.cc). Loop thread only.
#ifndef EVSSE_CORE_POLL_SESSION_H_
#define EVSSE_CORE_POLL_SESSION_H_

#include "evsse/ext/exchange.h"
#include "subscription.h"

namespace evsse::internal {

// PollSession answers one request with one JSON document: the events after
// the request's cursor (at most poll_max_events), the cursor after them, and
// the gap when there is one. With nothing to return it waits up to
// poll_timeout for the first event (a long poll). It is answered, never
// dropped: a shutdown, a slow-consumer or stall verdict, the Hub going away
// answer what there is; a store that cannot replay answers 503. Where it
// resumes and what it shares with a stream: Subscription.
class PollSession final : public Subscription {
 public:
  PollSession(StreamEndpoint* endpoint, Exchange* exchange);

  // Pump answers once something is pending.
  void Pump() override;
  void Close(CloseReason reason) override;

  void OnDrained() override {}  // nothing is written before the answer

 private:
  void Opening(bool) override {}  // the answer is the whole response
  void Resumed() override;
  void OnTimer() override;  // poll_timeout: answer what there is
  bool HasPending() const;
  void Answer();
};

}  // namespace evsse::internal

#endif  // EVSSE_CORE_POLL_SESSION_H_
