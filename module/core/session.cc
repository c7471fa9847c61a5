// The event stream: its start, batches that follow the drain, heartbeats,
// and how it ends.
#include "session.h"

#include <event2/buffer.h>

#include <limits>

#include "evsse/pubsub/cursor.h"
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

// An idle subscriber's memory is mostly libevent's; keep the Session within
// glibc's 192-byte block (184 usable) on 64-bit builds (bench/README.md,
// idle memory). Move new fields that few streams need into Cold.
static_assert(sizeof(void*) != 8 || sizeof(Session) <= 184,
              "Session outgrew its malloc block; see the comment above");

Session::Session(StreamEndpoint* endpoint, Exchange* exchange)
    : Subscription(endpoint, exchange) {}

Session::~Session() {
  endpoint_->heartbeats().Remove(this);
  endpoint_->stalls().Remove(this);
}

void Session::Opening(bool wait_for_tail) {
  if (!wait_for_tail) StartStream();
}

void Session::StartStream() {
  started_ = true;
  const StreamOptions& o = endpoint_->options();
  std::string prelude;
  AppendRetry(prelude, endpoint_->JitteredRetry());
  if (o.padding_bytes > 0) {
    prelude += ':';
    prelude.append(o.padding_bytes, ' ');
    prelude += '\n';
  }
  prelude += '\n';
  exchange_->Start(200, "OK");
  evbuffer* out = endpoint_->hub()->scratch();
  evbuffer_add(out, prelude.data(), prelude.size());
  exchange_->Write(out);
  AfterWrite(0);
  if (o.max_lifetime.count() > 0) ArmTimer(endpoint_->JitteredLifetime());
}

void Session::Resumed() {
  HubImpl* hub = endpoint_->hub();
  if (!started_) StartStream();
  if (has_gap()) {
    std::string gap;
    AppendEventBody(gap, endpoint_->options().gap_event, cold_->gap_json);
    std::string& id = hub->id_scratch();
    id.clear();
    AppendCursor(id);
    AppendIdAndEnd(gap, id);
    evbuffer_add(hub->scratch(), gap.data(), gap.size());
    cold_->gap_json.clear();
  }
  catching_up_ = true;
  size_t before = evbuffer_get_length(hub->scratch());
  size_t events = 0;
  bool caught_up = true;
  if (!Collect(endpoint_->options().replay_batch_bytes, &events, &caught_up)) {
    evbuffer_drain(hub->scratch(), evbuffer_get_length(hub->scratch()));
    Close(CloseReason::kSlowConsumer);
    return;
  }
  hub->stats().replayed_events += events;
  catching_up_ = !caught_up;
  if (!caught_up) FetchWhereBlocked();
  if (evbuffer_get_length(hub->scratch()) > 0 || before > 0) {
    exchange_->Write(hub->scratch());
    AfterWrite(events);
  }
  // A transport that took the whole first batch at once sends no
  // OnDrained: go on now (Pump loops while batches go out at once). Before,
  // a resume whose stream had started earlier (backend mode) stopped after
  // its first replay_batch_bytes.
  if (catching_up_ && !closed_ && exchange_->queued() == 0) Pump();
}

void Session::FetchWhereBlocked() {
  for (size_t k = 0; k < subs.size(); ++k) {
    Backlog* b = subs[k].backlog.get();
    if (b && b->empty() && b->more && !b->fetching) Fetch(k);
  }
}

bool Session::Collect(size_t budget, size_t* events, bool* caught_up) {
  HubImpl* hub = endpoint_->hub();
  evbuffer* out = hub->scratch();
  std::string& id = hub->id_scratch();
  return Walk(budget, std::numeric_limits<size_t>::max(), events, caught_up,
              [&](const pubsub::Event& e, bool whole) {
                if (whole) {
                  AddShared(out, e, e.wire.size());
                  return;
                }
                AddShared(out, e, e.body_size);
                id.clear();
                AppendCursor(id);
                std::string& line = hub->frame_scratch();
                line.clear();
                AppendIdAndEnd(line, id);
                evbuffer_add(out, line.data(), line.size());
              });
}

void Session::Pump() {
  if (closed_ || resolving()) return;
  const StreamOptions& o = endpoint_->options();
  // Live: everything pending, up to the queue's high watermark; what does
  // not fit waits in the history (the session is then behind, like a
  // replay, and goes on when the transport drained). Catching up: batches,
  // each once the previous one drained; a transport that wrote a batch at
  // once (queued is 0 after Write) gets the next one at once, as it sends no
  // OnDrained. A session stays open while its cursor is in the history: one
  // that falls out of it is a slow consumer (see Collect and
  // HubImpl::FanOut).
  for (;;) {
    size_t queued = exchange_->queued();
    size_t budget;
    if (catching_up_) {
      if (queued > 0) return;
      budget = o.replay_batch_bytes;
    } else if (queued >= o.max_queued_bytes) {
      catching_up_ = true;  // behind: OnDrained goes on
      return;
    } else {
      budget = o.max_queued_bytes - queued;
    }
    size_t events = 0;
    bool caught_up = false;
    if (!Collect(budget, &events, &caught_up)) {
      evbuffer_drain(endpoint_->hub()->scratch(),
                     evbuffer_get_length(endpoint_->hub()->scratch()));
      Close(CloseReason::kSlowConsumer);
      return;
    }
    bool was_catching_up = catching_up_;
    if (catching_up_) endpoint_->hub()->stats().replayed_events += events;
    catching_up_ = !caught_up;
    if (!caught_up) FetchWhereBlocked();
    if (events == 0) return;
    exchange_->Write(endpoint_->hub()->scratch());
    AfterWrite(events);
    if (closed_ || (!was_catching_up && !catching_up_)) return;
  }
}

void Session::AfterWrite(size_t events) {
  int64_t now = NowMs();
  endpoint_->heartbeats().Touch(this, now);
  // Only bytes still queued can stall (and only they get an OnDrained).
  if (exchange_->queued() > 0)
    endpoint_->stalls().Add(this, now);
  else
    endpoint_->stalls().Remove(this);
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
  if (catching_up_) {
    Pump();
  } else if (endpoint_->hub()->options().coalesce_window.count() > 0) {
    // Still writing the last fan-out until now: see HubImpl::Flush.
    int64_t now = NowUs();
    for (Sub& s : subs) s.topic->active_us = now;
  }
}

void Session::OnTimer() { Close(CloseReason::kLifetime); }

void Session::Close(CloseReason reason) {
  if (closed_) return;
  // A stream still waiting for its start position gets its response now,
  // so that a browser reconnects (a retry hint, then the end) rather than
  // seeing an aborted request.
  if (!started_ && reason != CloseReason::kPeerClosed &&
      reason != CloseReason::kHubGone)
    StartStream();
  HubImpl* hub = endpoint_->hub();
  HubStats& st = hub->stats();
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
      hub->NoteFreed(exchange_->queued());
      exchange_->Abort();
      break;
    case CloseReason::kStall:
      ++st.stall_closes;
      hub->NoteFreed(exchange_->queued());
      exchange_->Abort();
      break;
    case CloseReason::kHubGone:
      exchange_->Abort();
      break;
    case CloseReason::kRegrouped: {
      // The cursor as an id of its own: no data, so an EventSource
      // dispatches nothing but keeps it as its last event id, and the
      // reconnect resumes every topic (also one it had no event of yet).
      // Not before every topic is resolved: until then nothing was written
      // and the client's own id is the right one.
      if (!resolving()) {
        std::string& id = hub->id_scratch();
        id.clear();
        AppendCursor(id);
        std::string tail;
        AppendIdAndEnd(tail, id);
        evbuffer_add(hub->scratch(), tail.data(), tail.size());
        exchange_->Write(hub->scratch());
      }
      exchange_->End();
      break;
    }
    case CloseReason::kUnavailable:
      exchange_->End();  // the client resumes with its cursor
      break;
  }
  LogClosed(reason);
  endpoint_->heartbeats().Remove(this);
  endpoint_->stalls().Remove(this);
  Finish();
}

}  // namespace evsse::internal
