#include <event2/buffer.h>

#include <algorithm>
#include <limits>
#include <nlohmann/json.hpp>

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

Session::Session(StreamEndpoint* endpoint, Exchange* exchange, bool poll)
    : endpoint_(endpoint), exchange_(exchange), poll_(poll) {
  exchange_->set_listener(this);
}

Session::~Session() {
  endpoint_->heartbeats().Remove(this);
  endpoint_->stalls().Remove(this);
}

template <class Fn>
bool Session::Walk(size_t budget, size_t max_events, size_t* events,
                   bool* caught_up, Fn&& fn) {
  size_t bytes = 0;
  *events = 0;
  const size_t n = subs.size();
  for (const Sub& s : subs) {
    // An event after our position was dropped before we sent it.
    if (!s.backlog && s.pos < s.topic->history.evicted_up_to()) return false;
  }
  if (n == 1 && !subs[0].backlog) {
    // The common case: one topic, straight from its history.
    Sub& s = subs[0];
    const pubsub::TopicHistory& h = s.topic->history;
    size_t i = h.FirstAfter(s.pos);
    for (; i < h.size(); ++i) {
      if ((bytes >= budget || *events >= max_events) && *events > 0) break;
      const pubsub::Event& e = *h[i];
      s.pos = e.position;
      s.epoch = e.epoch;  // a topic's first event may create its epoch
      fn(e, true);
      bytes += e.wire.size();
      ++*events;
    }
    *caught_up = i == h.size();
    return true;
  }
  // Several sources: merge by position. A backlog (events fetched for a
  // resume) comes before its topic's history; one whose next page is still
  // being fetched holds the merge, so order is never broken.
  size_t idx[64];
  for (size_t k = 0; k < n; ++k)
    idx[k] =
        subs[k].backlog ? 0 : subs[k].topic->history.FirstAfter(subs[k].pos);
  for (;;) {
    size_t best = n;
    const pubsub::Event* head_of_best = nullptr;
    bool from_backlog = false;
    for (size_t k = 0; k < n; ++k) {
      Sub& s = subs[k];
      const pubsub::TopicHistory& h = s.topic->history;
      const pubsub::Event* head = nullptr;
      bool backlog = false;
      if (s.backlog) {
        if (!s.backlog->empty()) {
          head = s.backlog->front().get();
          backlog = true;
        } else if (s.backlog->more) {
          *caught_up = false;
          return true;
        } else {
          s.backlog.reset();
          if (s.pos < h.evicted_up_to()) return false;
          idx[k] = h.FirstAfter(s.pos);
        }
      }
      if (!head && idx[k] < h.size()) head = h[idx[k]].get();
      if (head && (!head_of_best || head->position < head_of_best->position)) {
        best = k;
        head_of_best = head;
        from_backlog = backlog;
      }
    }
    *caught_up = best == n;
    if (*caught_up) return true;
    if ((bytes >= budget || *events >= max_events) && *events > 0) return true;
    Sub& s = subs[best];
    if (from_backlog) {
      ++s.backlog->next;  // the page keeps the event alive while fn runs
    } else {
      ++idx[best];
    }
    s.pos = head_of_best->position;
    s.epoch = head_of_best->epoch;
    fn(*head_of_best, n == 1);
    bytes +=
        n == 1 ? head_of_best->wire.size() : head_of_best->body_size + n * 16;
    ++*events;
  }
}

void Session::FetchWhereBlocked() {
  for (size_t k = 0; k < subs.size(); ++k) {
    Backlog* b = subs[k].backlog.get();
    if (b && b->empty() && b->more && !b->fetching) Fetch(k);
  }
}

void Session::AppendCursor(std::string& out) const {
  for (size_t k = 0; k < subs.size(); ++k) {
    if (k) out += ',';
    pubsub::AppendPosition(out, {subs[k].epoch, subs[k].pos});
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
  if (closed_ || resume_) return;
  if (poll_) {
    if (HasPending()) AnswerPoll();
    return;
  }
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

bool Session::Continue(const Topic* t, uint64_t epoch, pubsub::Position end) {
  for (Sub& s : subs) {
    if (s.topic != t || s.epoch == epoch) continue;  // already moved
    // Its place is the old epoch's (or none yet: epoch 0, position 0).
    if (s.pos > end) return false;
    s.epoch = epoch;
  }
  return true;
}

bool Session::FellBehindHistory() const {
  for (const Sub& s : subs)
    if (!s.backlog && s.pos < s.topic->history.evicted_up_to()) return true;
  return false;
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

void Session::OnClosed() { Close(CloseReason::kPeerClosed); }

void Session::OnLifetime(evutil_socket_t, short, void* arg) {
  auto* self = static_cast<Session*>(arg);
  if (self->poll_)
    self->AnswerPoll();  // the long poll timed out: answer what there is
  else
    self->Close(CloseReason::kLifetime);
}

bool Session::HasPending() const {
  for (const Sub& s : subs) {
    if (s.backlog && !s.backlog->empty()) return true;
    if (!s.backlog &&
        s.topic->history.FirstAfter(s.pos) < s.topic->history.size())
      return true;
  }
  return false;
}

void Session::AnswerPoll() {
  HubImpl* hub = endpoint_->hub();
  const StreamOptions& o = endpoint_->options();
  nlohmann::ordered_json body;
  nlohmann::ordered_json& list = body["events"] =
      nlohmann::ordered_json::array();
  std::string type, data, id;
  size_t events = 0;
  bool caught_up = true;
  bool ok =
      Walk(std::numeric_limits<size_t>::max(), o.poll_max_events, &events,
           &caught_up, [&](const pubsub::Event& e, bool whole) {
             DecodeEventBody(std::string_view(e.wire).substr(0, e.body_size),
                             &type, &data);
             id.clear();
             if (whole)
               pubsub::AppendPosition(id, {e.epoch, e.position});
             else
               AppendCursor(id);
             list.push_back({{"id", id}, {"type", type}, {"data", data}});
           });
  if (!ok) {
    // Events after the cursor were dropped while this poll waited: report a
    // gap and move the cursor to now, as a stream would on reconnect.
    std::vector<std::string> topics;
    for (Sub& s : subs) {
      if (s.pos < s.topic->history.evicted_up_to()) {
        topics.push_back(s.topic->name);
        s.pos = hub->Tail(s.topic);
      }
    }
    std::string& gap = cold().gap_json;
    gap.clear();
    AppendGapData(gap, topics, false);
    ++hub->stats().gaps;
  }
  id.clear();
  AppendCursor(id);
  body["last_event_id"] = id;
  if (has_gap())
    body["gap"] =
        nlohmann::ordered_json::parse(cold_->gap_json, nullptr, false);
  std::string text = body.dump(
      -1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
  text += '\n';
  hub->stats().events_delivered += events;
  ++hub->stats().polls;
  exchange_->AddHeader("Content-Type", "application/json; charset=utf-8");
  exchange_->AddHeader("Cache-Control", "no-store");
  exchange_->Reply(200, "OK", text);
  Finish();
}

void Session::Finish() {
  closed_ = true;
  HubImpl* hub = endpoint_->hub();
  --hub->stats().connections_active;
  endpoint_->heartbeats().Remove(this);
  endpoint_->stalls().Remove(this);
  if (lifetime_timer_) lifetime_timer_.Cancel();
  exchange_ = nullptr;
  hub->Retire(this);
}

void Session::Close(CloseReason reason) {
  if (closed_) return;
  if (poll_ && reason == CloseReason::kUnavailable) {
    exchange_->AddHeader("Retry-After", "1");
    exchange_->AddHeader("Content-Type", "text/plain; charset=utf-8");
    exchange_->Reply(503, "Service Unavailable",
                     "history store unavailable; poll again\n");
    Finish();
    return;
  }
  if (poll_ && reason != CloseReason::kPeerClosed) {
    AnswerPoll();  // a waiting poll is answered, never dropped
    return;
  }
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
      if (!resume_) {
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
  if (hub->LogEnabled(LogLevel::kDebug)) {
    static const char* const kNames[] = {
        "peer closed",       "slow consumer",
        "write stall",       "lifetime",
        "shutdown",          "hub destroyed",
        "store unavailable", "store topics regrouped"};
    hub->Log(LogLevel::kDebug,
             std::string("stream closed: ") + kNames[static_cast<int>(reason)]);
  }
  Finish();
}

}  // namespace evsse::internal
