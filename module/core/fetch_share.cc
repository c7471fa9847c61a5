#include "fetch_share.h"

#include <event2/event.h>

#include <algorithm>
#include <utility>

#include "lists.h"

namespace evsse::internal {
namespace {

// What a cached event costs beyond its wire bytes (the Event, its topic
// name, the vector slot), so that a page of tiny events is not counted free.
constexpr size_t kEventOverhead = 96;

}  // namespace

FetchShare::FetchShare(event_base* base, Encode encode, size_t max_bytes,
                       Millis ttl)
    : encode_(std::move(encode)),
      max_bytes_(max_bytes),
      ttl_(ttl),
      timer_(base, &FetchShare::OnTimer, this),
      ready_event_(base, &FetchShare::OnReady, this) {}

FetchShare::~FetchShare() {
  timer_.Cancel();
  ready_event_.Cancel();
  // Every waiter hears exactly once; a reply the Backend sends later finds
  // its flight finished and is dropped.
  std::vector<Done> left;
  for (auto& [topic, slot] : slots_) {
    for (auto& f : slot.flights) {
      f->finished = true;
      for (Done& d : f->waiters) left.push_back(std::move(d));
    }
  }
  slots_.clear();
  for (auto& [done, r] : ready_) left.push_back(std::move(done));
  ready_.clear();
  for (Done& d : left) d(CancelledError("hub destroyed during a replay fetch"));
}

void FetchShare::Fetch(Backend* backend, const std::string& topic,
                       pubsub::Position after, pubsub::Position until,
                       size_t limit, Done done) {
  ++requests_;
  Expire(NowMs());
  auto found = slots_.find(topic);
  if (found != slots_.end()) {
    Slot& slot = found->second;
    for (const Entry& e : slot.pages) {
      if (e.after == after && e.limit >= limit && e.page->until >= until) {
        ++cache_hits_;
        Defer(std::move(done), e.page);
        return;
      }
    }
    for (auto& f : slot.flights) {
      if (f->joinable && f->after == after && f->limit >= limit &&
          f->until >= until) {
        ++joined_;
        f->waiters.push_back(std::move(done));
        return;
      }
    }
  }
  auto flight = std::make_shared<Flight>();
  flight->topic = topic;
  flight->after = after;
  flight->until = until;
  flight->limit = limit;
  flight->waiters.push_back(std::move(done));
  slots_[topic].flights.push_back(flight);
  ++fetches_;
  // `this` outlives the flight's reply: ~FetchShare marks it finished.
  backend->Fetch(topic, after, until, limit,
                 [this, flight](Result<Backend::FetchResult> r) {
                   if (!flight->finished) Complete(flight, std::move(r));
                 });
}

void FetchShare::Complete(const std::shared_ptr<Flight>& flight,
                          Result<Backend::FetchResult> r) {
  flight->finished = true;
  auto it = slots_.find(flight->topic);
  if (it != slots_.end()) {
    auto& fl = it->second.flights;
    fl.erase(std::remove(fl.begin(), fl.end(), flight), fl.end());
    if (fl.empty() && it->second.pages.empty()) slots_.erase(it);
  }
  // An OK Status is never held: an ok reply replaces it below.
  Result<PageRef> out = r.ok() ? Result<PageRef>(PageRef()) : r.status();
  if (r.ok()) {
    auto page = std::make_shared<Page>();
    page->epoch = r->epoch;
    page->trimmed = r->trimmed;
    page->former = r->former;
    page->ahead = r->ahead;
    page->more = r->more;
    page->until = flight->until;
    page->events.reserve(r->events.size());
    for (const StoredEvent& e : r->events) {
      page->events.push_back(encode_(
          flight->topic, WrittenEpoch(r->former, r->epoch, e.position), e));
      page->bytes += page->events.back()->wire.size() + flight->topic.size() +
                     kEventOverhead;
    }
    if (flight->joinable) {
      Store(flight->topic, flight->after, flight->limit, page);
    }
    out = Result<PageRef>(PageRef(std::move(page)));
  }
  // Answers go out from the loop, like the Backend's own: a waiter that
  // fetches its next page from inside its callback starts a new flight.
  for (Done& d : flight->waiters) Defer(std::move(d), out);
  flight->waiters.clear();
}

void FetchShare::Store(const std::string& topic, pubsub::Position after,
                       size_t limit, PageRef page) {
  if (page->bytes > max_bytes_ || ttl_.count() <= 0) return;
  uint64_t serial = next_serial_++;
  bytes_ += page->bytes;
  ++pages_;
  slots_[topic].pages.push_back({serial, after, limit, std::move(page)});
  order_.push_back({topic, serial, NowMs() + ttl_.count()});
  while (bytes_ > max_bytes_ && !order_.empty()) {
    Aged oldest = std::move(order_.front());
    order_.pop_front();
    Remove(oldest.topic, oldest.serial);
  }
  ArmTimer();
}

void FetchShare::Remove(const std::string& topic, uint64_t serial) {
  auto it = slots_.find(topic);
  if (it == slots_.end()) return;  // dropped already
  auto& pages = it->second.pages;
  for (auto p = pages.begin(); p != pages.end(); ++p) {
    if (p->serial != serial) continue;
    bytes_ -= p->page->bytes;
    --pages_;
    pages.erase(p);
    break;
  }
  if (pages.empty() && it->second.flights.empty()) slots_.erase(it);
}

void FetchShare::DropTopic(const std::string& topic) {
  auto it = slots_.find(topic);
  if (it == slots_.end()) return;
  for (auto& f : it->second.flights) f->joinable = false;
  for (const Entry& e : it->second.pages) {
    bytes_ -= e.page->bytes;
    --pages_;
  }
  it->second.pages.clear();
  if (it->second.flights.empty()) slots_.erase(it);
  // order_ keeps stale items for these pages; Remove skips them.
}

void FetchShare::Clear() {
  for (auto it = slots_.begin(); it != slots_.end();) {
    for (auto& f : it->second.flights) f->joinable = false;
    it->second.pages.clear();
    if (it->second.flights.empty()) {
      it = slots_.erase(it);
    } else {
      ++it;
    }
  }
  order_.clear();
  bytes_ = 0;
  pages_ = 0;
  timer_.Cancel();
}

void FetchShare::Expire(int64_t now_ms) {
  while (!order_.empty() && order_.front().expires_ms <= now_ms) {
    Aged oldest = std::move(order_.front());
    order_.pop_front();
    Remove(oldest.topic, oldest.serial);
  }
}

void FetchShare::ArmTimer() {
  if (order_.empty() || timer_.pending()) return;
  timer_.AfterMs(std::max<int64_t>(order_.front().expires_ms - NowMs(), 1));
}

void FetchShare::Defer(Done done, Result<PageRef> r) {
  ready_.emplace_back(std::move(done), std::move(r));
  ready_event_.Activate();
}

void FetchShare::OnTimer(int, short, void* arg) {
  auto* self = static_cast<FetchShare*>(arg);
  self->Expire(NowMs());
  self->ArmTimer();
}

void FetchShare::OnReady(int, short, void* arg) {
  auto* self = static_cast<FetchShare*>(arg);
  std::deque<std::pair<Done, Result<PageRef>>> batch;
  batch.swap(self->ready_);
  for (auto& [done, r] : batch) done(std::move(r));
}

}  // namespace evsse::internal
