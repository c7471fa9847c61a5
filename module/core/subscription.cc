// What a stream and a poll share besides the resume (resume.cc): the cursor,
// a failover's continued epoch, the timer, and the end.
#include "subscription.h"

#include "evsse/pubsub/cursor.h"
#include "hub_impl.h"

namespace evsse::internal {

Subscription::Subscription(StreamEndpoint* endpoint, Exchange* exchange)
    : endpoint_(endpoint), exchange_(exchange) {
  exchange_->set_listener(this);
}

void Subscription::AppendCursor(std::string& out) const {
  for (size_t k = 0; k < subs.size(); ++k) {
    if (k) out += ',';
    pubsub::AppendPosition(out, {subs[k].epoch, subs[k].pos});
  }
}

bool Subscription::Continue(const Topic* t, uint64_t epoch,
                            pubsub::Position end) {
  for (Sub& s : subs) {
    if (s.topic != t || s.epoch == epoch) continue;  // already moved
    // Its place is the old epoch's (or none yet: epoch 0, position 0).
    if (s.pos > end) return false;
    s.epoch = epoch;
  }
  return true;
}

bool Subscription::FellBehindHistory() const {
  for (const Sub& s : subs)
    if (!s.backlog && s.pos < s.topic->history.evicted_up_to()) return true;
  return false;
}

void Subscription::OnClosed() { Close(CloseReason::kPeerClosed); }

void Subscription::ArmTimer(int64_t ms) {
  timer_ =
      OwnedEvent(endpoint_->hub()->base(), &Subscription::OnTimerEvent, this);
  timer_.AfterMs(ms);
}

void Subscription::OnTimerEvent(evutil_socket_t, short, void* arg) {
  static_cast<Subscription*>(arg)->OnTimer();
}

void Subscription::Finish() {
  closed_ = true;
  HubImpl* hub = endpoint_->hub();
  --hub->stats().connections_active;
  if (timer_) timer_.Cancel();
  exchange_ = nullptr;
  hub->Retire(this);
}

void Subscription::LogClosed(CloseReason reason) {
  HubImpl* hub = endpoint_->hub();
  if (!hub->LogEnabled(LogLevel::kDebug)) return;
  static const char* const kNames[] = {
      "peer closed",       "slow consumer",
      "write stall",       "lifetime",
      "shutdown",          "hub destroyed",
      "store unavailable", "store topics regrouped"};
  hub->Log(LogLevel::kDebug,
           std::string("stream closed: ") + kNames[static_cast<int>(reason)]);
}

}  // namespace evsse::internal
