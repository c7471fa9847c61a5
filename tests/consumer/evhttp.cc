// evsse::evhttp alone: mounts a
// stream endpoint on a loopback evhttp server and publishes one event.
#include <event2/event.h>
#include <event2/http.h>
#include <evsse/evhttp.h>
#include <evsse/hub.h>

#include <cstdio>

int main() {
  event_base* base = event_base_new();
  evhttp* http = evhttp_new(base);
  if (evhttp_bind_socket_with_handle(http, "127.0.0.1", 0) == nullptr) {
    std::fprintf(stderr, "consumer: bind failed\n");
    return 1;
  }
  auto hub = evsse::Hub::Create(base, {});
  if (!hub.ok()) {
    std::fprintf(stderr, "consumer: %s\n", hub.status().ToString().c_str());
    return 1;
  }
  evsse::Mounted events = evsse::evhttp::Mount(http, "/events", hub->get());
  evsse::Status status = events.status();
  if (status.ok()) status = hub.value()->Publish("t", {"", "hello"});
  if (!status.ok()) {
    std::fprintf(stderr, "consumer: %s\n", status.ToString().c_str());
    return 1;
  }
  event_base_loop(base, EVLOOP_NONBLOCK);
  events.Unmount();  // reverse order of creation
  hub.value().reset();
  evhttp_free(http);
  event_base_free(base);
  std::printf("consumer_evhttp ok\n");
  return 0;
}
