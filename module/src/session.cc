#include <event2/buffer.h>

#include <algorithm>
#include <limits>

#include "evsse/wire.h"
#include "hub_impl.h"

namespace evsse::internal {
namespace {

// Events smaller than this are copied into the outgoing buffer (one memcpy
// into a chain libevent allocates per write anyway); larger ones are added by
// reference, so their bytes are never copied per subscriber.
constexpr size_t kCopyBelow = 1024;

void ReleaseEvent(const void*, size_t, void* extra) {
  static_cast<const pubsub::Event*>(extra)->Unref();
}

void AddShared(evbuffer* out, const pubsub::Event& e, size_t size) {
  if (size < kCopyBelow) {
    evbuffer_add(out, e.wire.data(), size);
  } else {
    e.Ref();
    evbuffer_add_reference(out, e.wire.data(), size, &ReleaseEvent,
                           const_cast<pubsub::Event*>(&e));
  }
}

}  // namespace

Session::Session(StreamEndpoint* endpoint, Exchange* exchange)
    : endpoint_(endpoint), exchange_(exchange) {
  exchange_->set_listener(this);
}

Session::~Session() {
  if (lifetime_timer_) event_free(lifetime_timer_);
  endpoint_->heartbeats().Remove(this);
  endpoint_->stalls().Remove(this);
}

void Session::Begin(const std::string& prelude) {
  HubImpl* hub = endpoint_->hub();
  const StreamOptions& o = endpoint_->options();
  exchange_->Start(200, "OK");
  evbuffer* out = hub->scratch();
  evbuffer_add(out, prelude.data(), prelude.size());
  size_t events = 0;
  bool caught_up = true;
  // The cursor was checked against history just before: nothing is lost.
  Collect(o.replay_batch_bytes, &events, &caught_up);
  hub->stats().replayed_events += events;  // anything found now is replay
  catching_up_ = !caught_up;
  exchange_->Write(out);
  AfterWrite(events);
  if (o.max_lifetime.count() > 0) {
    lifetime_timer_ = evtimer_new(hub->base(), &Session::OnLifetime, this);
    int64_t ms = endpoint_->JitteredLifetime();
    timeval tv{static_cast<time_t>(ms / 1000),
               static_cast<suseconds_t>((ms % 1000) * 1000)};
    evtimer_add(lifetime_timer_, &tv);
  }
}

bool Session::Collect(size_t budget, size_t* events, bool* caught_up) {
  HubImpl* hub = endpoint_->hub();
  evbuffer* out = hub->scratch();
  size_t bytes = 0;
  *events = 0;
  for (const Sub& s : subs) {
    // An event after our position was dropped before we sent it.
    if (s.pos < s.topic->history.evicted_up_to()) return false;
  }
  if (subs.size() == 1) {
    Sub& s = subs[0];
    const pubsub::TopicHistory& h = s.topic->history;
    size_t i = h.FirstAfter(s.pos);
    for (; i < h.size(); ++i) {
      if (bytes >= budget && *events > 0) break;
      const pubsub::Event& e = *h[i];
      AddShared(out, e, e.wire.size());
      bytes += e.wire.size();
      s.pos = e.position;
      ++*events;
    }
    *caught_up = i == h.size();
    return true;
  }
  // Several topics: merge by position; each event carries the composite
  // cursor (every topic's last delivered position) as its id.
  size_t idx[64];
  for (size_t k = 0; k < subs.size(); ++k)
    idx[k] = subs[k].topic->history.FirstAfter(subs[k].pos);
  std::string& id = hub->id_scratch();
  for (;;) {
    size_t best = subs.size();
    for (size_t k = 0; k < subs.size(); ++k) {
      const pubsub::TopicHistory& h = subs[k].topic->history;
      if (idx[k] >= h.size()) continue;
      if (best == subs.size() ||
          h[idx[k]]->position < subs[best].topic->history[idx[best]]->position)
        best = k;
    }
    if (best == subs.size()) {
      *caught_up = true;
      return true;
    }
    if (bytes >= budget && *events > 0) {
      *caught_up = false;
      return true;
    }
    const pubsub::Event& e = *subs[best].topic->history[idx[best]++];
    subs[best].pos = e.position;
    AddShared(out, e, e.body_size);
    id.assign("id: ");
    for (size_t k = 0; k < subs.size(); ++k) {
      if (k) id += ',';
      pubsub::AppendPosition(id, {subs[k].epoch, subs[k].pos});
    }
    id += "\n\n";
    evbuffer_add(out, id.data(), id.size());
    bytes += e.body_size + id.size();
    ++*events;
  }
}

void Session::Pump() {
  if (closed_) return;
  const StreamOptions& o = endpoint_->options();
  size_t budget = std::numeric_limits<size_t>::max();
  if (catching_up_) {
    // Replay is paced: the next batch goes once the previous one drained.
    if (exchange_->queued() > 0) return;
    budget = o.replay_batch_bytes;
  }
  size_t events = 0;
  bool caught_up = false;
  if (!Collect(budget, &events, &caught_up)) {
    evbuffer_drain(endpoint_->hub()->scratch(),
                   evbuffer_get_length(endpoint_->hub()->scratch()));
    Close(CloseReason::kSlowConsumer);
    return;
  }
  if (catching_up_) endpoint_->hub()->stats().replayed_events += events;
  catching_up_ = !caught_up;
  if (events == 0) return;
  exchange_->Write(endpoint_->hub()->scratch());
  AfterWrite(events);
  if (exchange_->queued() > o.max_queued_bytes)
    Close(CloseReason::kSlowConsumer);
}

void Session::AfterWrite(size_t events) {
  int64_t now = NowMs();
  endpoint_->heartbeats().Touch(this, now);
  endpoint_->stalls().Add(this, now);
  endpoint_->hub()->stats().events_delivered += events;
}

void Session::Heartbeat() {
  if (closed_) return;
  if (exchange_->queued() > 0) {
    // Bytes are still waiting: the stall timeout watches this connection.
    endpoint_->heartbeats().Touch(this, NowMs());
    return;
  }
  evbuffer* out = endpoint_->hub()->scratch();
  evbuffer_add(out, ":\n", 2);
  exchange_->Write(out);
  AfterWrite(0);
  ++endpoint_->hub()->stats().heartbeats;
}

void Session::OnDrained() {
  endpoint_->stalls().Remove(this);
  if (catching_up_) Pump();
}

void Session::OnClosed() { Close(CloseReason::kPeerClosed); }

void Session::OnLifetime(evutil_socket_t, short, void* arg) {
  static_cast<Session*>(arg)->Close(CloseReason::kLifetime);
}

void Session::Close(CloseReason reason) {
  if (closed_) return;
  closed_ = true;
  HubImpl* hub = endpoint_->hub();
  HubStats& st = hub->stats();
  --st.connections_active;
  endpoint_->heartbeats().Remove(this);
  endpoint_->stalls().Remove(this);
  if (lifetime_timer_) event_del(lifetime_timer_);
  switch (reason) {
    case CloseReason::kPeerClosed:
      break;  // the exchange is already gone
    case CloseReason::kShutdown: {
      // A last retry hint, so that clients come back spread out (and, behind
      // a load balancer, to another node).
      std::string tail;
      AppendRetry(tail, endpoint_->JitteredRetry());
      tail += '\n';
      evbuffer_add(hub->scratch(), tail.data(), tail.size());
      exchange_->Write(hub->scratch());
      exchange_->End();
      break;
    }
    case CloseReason::kLifetime:
      ++st.lifetime_closes;
      exchange_->End();
      break;
    case CloseReason::kSlowConsumer:
      ++st.slow_consumer_closes;
      exchange_->Abort();
      break;
    case CloseReason::kStall:
      ++st.stall_closes;
      exchange_->Abort();
      break;
    case CloseReason::kHubGone:
      exchange_->Abort();
      break;
  }
  exchange_ = nullptr;
  if (hub->LogEnabled(LogLevel::kDebug)) {
    static const char* const kNames[] = {"peer closed", "slow consumer",
                                         "write stall", "lifetime",
                                         "shutdown",    "hub destroyed"};
    hub->Log(LogLevel::kDebug,
             std::string("stream closed: ") + kNames[static_cast<int>(reason)]);
  }
  hub->Retire(this);
}

}  // namespace evsse::internal
