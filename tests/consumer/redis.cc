// evsse::redis alone: a malformed address is refused before any connect.
#include <event2/event.h>
#include <evsse/hub.h>
#include <evsse/redis.h>

#include <cstdio>

int main() {
  event_base* base = event_base_new();
  auto hub = evsse::Hub::Create(base, {});
  if (!hub.ok()) return 1;
  evsse::redis::RedisOptions options;
  options.address = "no port";
  auto link = evsse::redis::Attach(hub->get(), options);
  bool refused = !link.ok();
  hub.value().reset();
  event_base_free(base);
  std::printf("consumer_redis %s\n", refused ? "ok" : "failed");
  return refused ? 0 : 1;
}
