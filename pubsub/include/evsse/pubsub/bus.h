// evsse::pubsub::Bus: assigns positions to published events and hands each
// event, in one global order, to every attached listener (one Hub per event
// loop).
//
// Thread safety: every method may be called from any thread. Listeners are
// called with the bus lock held, from the publishing thread: they must only
// queue the event and wake their own loop (never call back into the bus).
#ifndef EVSSE_PUBSUB_BUS_H_
#define EVSSE_PUBSUB_BUS_H_

#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <vector>

#include "evsse/export.h"
#include "evsse/pubsub/cursor.h"
#include "evsse/pubsub/event.h"

namespace evsse::pubsub {

class EVSSE_API Bus {
 public:
  class EVSSE_API Listener {
   public:
    virtual ~Listener() = default;
    // OnBusEvent receives every event in bus order. `token` is the one
    // given to Publish when this listener is the publish's origin, else
    // nullptr.
    virtual void OnBusEvent(const EventRef& event, void* token) = 0;
  };

  // Bus with `epoch` naming its history in ids; 0 picks a random one (40
  // bits), so a restarted process never accepts an old cursor as its own.
  explicit Bus(uint64_t epoch = 0);
  Bus(const Bus&) = delete;
  Bus& operator=(const Bus&) = delete;

  uint64_t epoch() const { return epoch_; }

  // Attach/Detach a listener; after Detach returns it is never called again.
  // Attach returns the position of the newest event published before it:
  // the listener receives every event after it, none before.
  Position Attach(Listener* listener);
  void Detach(Listener* listener);

  // Publish makes an Event of `topic` whose wire starts with `body`, assigns
  // it the next position, lets `finish` complete it (the id line; it runs
  // under the lock, keep it short), then hands it to every listener.
  EventRef Publish(std::string topic, std::string body,
                   const std::function<void(Event&)>& finish, Listener* origin,
                   void* token);

  // last returns the position of the newest event published so far.
  Position last() const;

 private:
  const uint64_t epoch_;
  mutable std::mutex mu_;
  uint64_t next_seq_ = 1;
  std::vector<Listener*> listeners_;
};

}  // namespace evsse::pubsub

#endif  // EVSSE_PUBSUB_BUS_H_
