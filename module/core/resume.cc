// Where a new Subscription (a stream or a poll) starts in each topic: a
// fresh one at the tail, a resuming one after its cursor. In memory mode
// that is decided at once. In backend mode a topic must first be synced (the
// node receives everything after a known position), and events older than
// the node's history are fetched from the store, a page at a time, into a
// per-subscriber backlog that is delivered before the shared history. A
// cursor the history cannot honour (unknown epoch, from the future, or older
// than what was kept) gets the gap (a stream's gap event, a poll's "gap"),
// then the topic goes live from now. Once every topic is known, Resumed
// hands over to the transport.
#include "evsse/pubsub/cursor.h"
#include "evsse/wire.h"
#include "hub_impl.h"
#include "subscription.h"

namespace evsse::internal {
namespace {

constexpr size_t kFetchPage = 1000;
// A backend cursor more than this far in the future (stream ids are
// milliseconds) cannot be one the store handed out.
constexpr int64_t kFutureSlackMs = 60 * 1000;

int64_t WallMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

void Subscription::Open(
    std::optional<std::vector<pubsub::TopicCursor>> cursor) {
  if (cursor) ++endpoint_->hub()->stats().replays;
  // A fresh subscription starts at its topics' tails. With a backend, a
  // topic this node does not follow yet has no tail until its feed is
  // synced (subscribed, then the stream's tail read): answering before
  // would let an event published in between reach nobody. So such a
  // stream starts once every topic is synced; every event published after
  // its response started is then after the tail it starts from. While the
  // link is down nothing can be published, and a client kept waiting that
  // long would meet its proxy's timeout (a 504 an EventSource never
  // retries): it is answered at once.
  bool wait_for_tail = false;
  if (!cursor && endpoint_->hub()->backend() && endpoint_->hub()->link_up()) {
    for (const Sub& s : subs) wait_for_tail |= !s.topic->synced;
  }
  Opening(wait_for_tail);
  resume_ = std::make_unique<ResumeState>();
  resume_->cursor = std::move(cursor);
  resume_->resolved.assign(subs.size(), false);
  Resolve();
}

void Subscription::Resolve() {
  if (closed_ || !resume_) return;
  bool all = true;
  for (size_t k = 0; k < subs.size(); ++k) {
    if (resume_->resolved[k]) continue;
    if (subs[k].backlog && subs[k].backlog->fetching) {
      all = false;  // its first page is on the way
      continue;
    }
    Topic* t = subs[k].topic;
    if (!t->synced) {
      auto& w = t->waiting;
      if (std::find(w.begin(), w.end(), this) == w.end()) w.push_back(this);
      all = false;
      continue;
    }
    ResolveTopic(k);
    if (closed_) return;
    all = all && resume_->resolved[k];
  }
  if (all && resume_->fetching == 0) Ready();
}

void Subscription::Gap(size_t k, bool unknown) {
  Sub& s = subs[k];
  resume_->gapped.push_back(s.topic->name);
  resume_->unknown = resume_->unknown || unknown;
  s.epoch = s.topic->epoch;
  s.pos = endpoint_->hub()->Tail(s.topic);
  s.backlog.reset();
}

void Subscription::ResolveTopic(size_t k) {
  HubImpl* hub = endpoint_->hub();
  Sub& s = subs[k];
  Topic* t = s.topic;
  // Expired events may still sit in a topic not used since (the sweep
  // only visits topics by last use): a cursor among them gets the gap.
  hub->TrimExpired(t);
  s.epoch = t->epoch;
  resume_->resolved[k] = true;
  if (!resume_->cursor) {
    s.pos = hub->Tail(t);
    return;
  }
  const pubsub::TopicCursor& c = (*resume_->cursor)[k];
  if (!hub->backend()) {
    if (c.epoch != t->epoch || c.position > hub->bus_last())
      return Gap(k, true);
    if (c.position < t->history.evicted_up_to()) return Gap(k, false);
    s.pos = c.position;
    return;
  }
  if (static_cast<int64_t>(c.position.major) > WallMs() + kFutureSlackMs)
    return Gap(k, true);
  // Epoch 0 is "before the stream existed": everything since is after it.
  uint64_t epoch = c.epoch;
  pubsub::Position position = c.position;
  if (epoch != t->epoch && epoch != 0 && t->former) {
    // An epoch the stream continues (a failover): good up to where it
    // ended; after that, the events the cursor names were lost.
    if (auto end = ContinuedEnd(*t->former, epoch)) {
      epoch = t->epoch;
      if (c.position > *end) {
        // The cursor names events that were lost: the client is told, and
        // gets everything the stream has had since (none of it sorts
        // after the lost ids necessarily).
        resume_->gapped.push_back(t->name);
        position = *end;
      }
    }
  }
  s.pos = position;
  pubsub::Position floor = hub->Floor(t);
  pubsub::Position until = floor;
  if (position >= floor && epoch == t->epoch) {
    if (position <= hub->Tail(t)) return;
    // Past the newest position this node holds: one another node had
    // first, or one of an earlier stream under this epoch (a Kafka topic
    // deleted and created again restarts its offsets). The store tells them
    // apart (FetchResult::ahead), answering an empty range.
    until = position;
  }
  // Another epoch this node does not know (yet): the store decides
  // (OnFetched) whether its stream continues it or the cursor is unknown.
  if (epoch != 0) s.epoch = epoch;
  s.backlog = std::make_unique<Backlog>();
  s.backlog->next_after = epoch == 0 ? pubsub::Position() : position;
  s.backlog->until = until;
  resume_->resolved[k] = false;
  ++resume_->fetching;
  Fetch(k);
}

void Subscription::Fetch(size_t k) {
  Backlog& b = *subs[k].backlog;
  b.fetching = true;
  std::shared_ptr<Subscription*>& handle = cold().handle;
  if (!handle) handle = std::make_shared<Subscription*>(this);
  std::weak_ptr<Subscription*> weak = handle;
  HubImpl* hub = endpoint_->hub();
  hub->fetch_share().Fetch(hub->backend(), subs[k].topic->name, b.next_after,
                           b.until, kFetchPage, [weak, k](Result<PageRef> r) {
                             if (auto alive = weak.lock())
                               (*alive)->OnFetched(k, std::move(r));
                           });
}

void Subscription::OnFetched(size_t k, Result<PageRef> r) {
  if (closed_) return;
  Sub& s = subs[k];
  Backlog& b = *s.backlog;
  b.fetching = false;
  bool first = resume_ && !resume_->resolved[k];
  if (!r.ok()) {
    // The store is unreachable: end the stream; the client retries with the
    // same cursor, so nothing is lost.
    Close(CloseReason::kUnavailable);
    return;
  }
  const Page& page = **r;
  if (first && page.epoch != s.epoch && s.epoch != 0) {
    // The stream may continue the cursor's epoch (a failover this node has
    // not followed yet): up to its end the cursor is good; past it, the
    // client is told of the gap and reads on from the end.
    std::optional<pubsub::Position> end = ContinuedEnd(page.former, s.epoch);
    if (end) {
      s.epoch = page.epoch;
      if (b.next_after > *end) {
        resume_->gapped.push_back(s.topic->name);
        b.next_after = *end;
        s.pos = *end;
        return Fetch(k);
      }
    }
  }
  if (first) {
    resume_->resolved[k] = true;
    --resume_->fetching;
    if ((page.epoch != s.epoch && s.epoch != 0) || page.ahead) {
      Gap(k, true);
    } else if (page.trimmed) {
      Gap(k, false);
    }
  } else if (page.trimmed || page.ahead || page.epoch != s.epoch) {
    // Trimmed between two pages: this client missed events. It reconnects
    // with its cursor and is told of the gap then.
    Close(CloseReason::kSlowConsumer);
    return;
  }
  if (s.backlog) {
    // A shared page may reach past `until` (it was fetched for a session
    // that resolved later): an event past it means the range is complete.
    size_t end = 0;
    bool reached = false;
    for (; end < page.events.size(); ++end) {
      if (page.events[end]->position > b.until) {
        reached = true;
        break;
      }
    }
    b.page = *r;
    b.next = 0;
    b.end = end;
    if (end > 0) b.next_after = page.events[end - 1]->position;
    b.more = !reached && page.more && b.next_after < b.until;
  }
  if (first) {
    Resolve();
  } else {
    Pump();
  }
}

void Subscription::Ready() {
  HubImpl* hub = endpoint_->hub();
  if (!resume_->gapped.empty()) {
    ++hub->stats().gaps;
    std::string& gap = cold().gap_json;
    gap.clear();
    AppendGapData(gap, resume_->gapped, resume_->unknown);
  }
  resume_.reset();
  Resumed();
}

}  // namespace evsse::internal
