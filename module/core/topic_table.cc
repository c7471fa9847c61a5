// The Hub's topic table: finding and making topics, keeping them in the
// idle and busy lists by last use, and bounding them and their history
// (max_topics, history_max_bytes, history_max_age) without scanning the
// table. See topic.h and HubOptions.
#include <algorithm>
#include <string>

#include "hub_impl.h"

namespace evsse::internal {

Topic* HubImpl::FindTopic(std::string_view name) {
  auto it = topics_.find(name);
  return it == topics_.end() ? nullptr : it->second.get();
}

Topic* HubImpl::GetTopic(const std::string& name) {
  if (Topic* t = FindTopic(name)) return t;
  while (topics_.size() >= options_.max_topics && !idle_.empty())
    EvictTopic(idle_.front());
  if (topics_.size() >= options_.max_topics) return nullptr;
  auto t = std::make_unique<Topic>(&meter_);
  t->name = name;
  meter_.bytes += TopicBytes(name);
  if (backend_.load()) {
    t->synced = false;
  } else {
    t->epoch = bus_->epoch();
    t->history.RaiseFloor(forgotten_up_to_);
  }
  Topic* raw = t.get();
  topics_.emplace(raw->name, std::move(t));
  return raw;
}

bool HubImpl::Retouch(Topic* t, bool used) {
  const bool in_use = InUse(t);
  if (!in_use && t->history.empty()) {
    Forget(t);
    return false;
  }
  Topic::In want = t->history.empty() ? Topic::In::kNone
                   : in_use           ? Topic::In::kBusy
                                      : Topic::In::kIdle;
  if (want == t->in && !(used && want != Topic::In::kNone)) return true;
  if (t->in == Topic::In::kIdle) idle_.Remove(t);
  if (t->in == Topic::In::kBusy) busy_.Remove(t);
  t->in = want;
  if (want == Topic::In::kNone) return true;
  t->since = NowMs();
  (want == Topic::In::kIdle ? idle_ : busy_).PushBack(t);
  return true;
}

void HubImpl::Forget(Topic* t) {
  if (t->in == Topic::In::kIdle) idle_.Remove(t);
  if (t->in == Topic::In::kBusy) busy_.Remove(t);
  // Remember how far forgotten topics went: a cursor for a recreated topic
  // below this may have missed events and gets a gap.
  forgotten_up_to_ = std::max(forgotten_up_to_, t->history.last());
  meter_.bytes -= TopicBytes(t->name);
  topics_.erase(std::string_view(t->name));  // deletes t
}

void HubImpl::EvictTopic(Topic* t) {
  stats_.history_events_evicted += t->history.DropAll();
  ++stats_.topics_evicted;
  Forget(t);
}

bool HubImpl::EvictFor(size_t bytes) {
  while (OverBudget(bytes) && !idle_.empty()) EvictTopic(idle_.front());
  return !OverBudget(bytes) || EvictDelivered(bytes);
}

// EvictDelivered drops, from the busy topics least recently used first, the
// events every subscriber of the topic has written already (a session
// still resolving or catching up holds its cursor, so what it is owed
// stays). A topic it trimmed goes to the back, so the next call starts on
// others. Each topic is visited once.
bool HubImpl::EvictDelivered(size_t bytes) {
  for (size_t n = busy_.size(); n > 0 && OverBudget(bytes); --n) {
    Topic* t = busy_.front();
    pubsub::Position owed = t->history.last();
    for (Subscription* s : t->subscribers)
      for (const Subscription::Sub& sub : s->subs)
        if (sub.topic == t) owed = std::min(owed, sub.pos);
    stats_.history_events_evicted += t->history.DropUpTo(owed);
    Retouch(t, true);  // in use: kept, at the back or in no list
  }
  return !OverBudget(bytes);
}

void HubImpl::TrimExpired(Topic* t) {
  if (options_.history_max_age.count() <= 0) return;
  stats_.history_events_expired +=
      t->history.TrimOlderThan(NowMs() - options_.history_max_age.count());
}

// OnSweep expires history by age without visiting every topic: a topic's
// place in its list was taken at its last use (an event, a subscriber), so
// every event of a topic whose use is older than history_max_age is
// expired, and the walk stops at the first more recent one. Events that
// expire in topics used since are dropped when the topic is next used or
// read (TrimExpired), and the byte budget bounds them meanwhile.
void HubImpl::OnSweep(evutil_socket_t, short, void* arg) {
  auto* self = static_cast<HubImpl*>(arg);
  const int64_t min_ms = NowMs() - self->options_.history_max_age.count();
  for (List<Topic, TopicTag>* list : {&self->idle_, &self->busy_}) {
    while (Topic* t = list->front()) {
      if (t->since >= min_ms) break;
      self->stats_.history_events_expired += t->history.DropAll();
      self->Retouch(t, false);  // forgotten, or out of the lists
    }
  }
}

}  // namespace evsse::internal
