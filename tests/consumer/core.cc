// evsse::core alone: a Hub on a base, with no HTTP server at all.
#include <event2/event.h>
#include <evsse/hub.h>

#include <cstdio>

int main() {
  event_base* base = event_base_new();
  auto hub = evsse::Hub::Create(base, {});
  if (!hub.ok() || !hub.value()->Publish("t", {"", "hello"}).ok()) {
    std::fprintf(stderr, "consumer_core: cannot publish\n");
    return 1;
  }
  event_base_loop(base, EVLOOP_NONBLOCK);
  bool one = hub.value()->stats().events_published == 1;
  hub.value().reset();
  event_base_free(base);
  std::printf("consumer_core %s\n", one ? "ok" : "failed");
  return one ? 0 : 1;
}
