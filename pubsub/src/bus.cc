#include "evsse/pubsub/bus.h"

#include <algorithm>
#include <chrono>
#include <random>

namespace evsse::pubsub {
namespace {

uint64_t RandomEpoch() {
  std::random_device rd;
  uint64_t v = (uint64_t{rd()} << 32) ^ rd();
  v ^= static_cast<uint64_t>(
      std::chrono::system_clock::now().time_since_epoch().count());
  v &= (uint64_t{1} << 40) - 1;  // 8 base-36 digits at most: ids stay short
  return v == 0 ? 1 : v;
}

int64_t SteadyMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace

Bus::Bus(uint64_t epoch) : epoch_(epoch != 0 ? epoch : RandomEpoch()) {}

Position Bus::Attach(Listener* listener) {
  std::lock_guard<std::mutex> lock(mu_);
  listeners_.push_back(listener);
  return Position{next_seq_ - 1, 0};
}

void Bus::Detach(Listener* listener) {
  std::lock_guard<std::mutex> lock(mu_);
  listeners_.erase(std::remove(listeners_.begin(), listeners_.end(), listener),
                   listeners_.end());
}

EventRef Bus::Publish(std::string topic, std::string body,
                      const std::function<void(Event&)>& finish,
                      Listener* origin, void* token) {
  auto* ev = new Event;
  ev->topic = std::move(topic);
  ev->epoch = epoch_;
  ev->body_size = static_cast<uint32_t>(body.size());
  ev->wire = std::move(body);
  EventRef ref(ev);
  // Position assignment and hand-off happen under one lock, so every
  // listener sees events in position order.
  std::lock_guard<std::mutex> lock(mu_);
  ev->position = Position{next_seq_++, 0};
  ev->published_ms = SteadyMs();
  if (finish) finish(*ev);
  for (Listener* l : listeners_)
    l->OnBusEvent(ref, l == origin ? token : nullptr);
  return ref;
}

Position Bus::last() const {
  std::lock_guard<std::mutex> lock(mu_);
  return Position{next_seq_ - 1, 0};
}

}  // namespace evsse::pubsub
