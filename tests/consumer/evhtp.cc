// evsse::evhtp alone: mounts a stream endpoint on a loopback libevhtp
// server.
#include <event2/event.h>
#include <evhtp/evhtp.h>
#include <evsse/evhtp.h>
#include <evsse/hub.h>

#include <cstdio>

int main() {
  event_base* base = event_base_new();
  evhtp_t* htp = evhtp_new(base, nullptr);
  if (evhtp_bind_socket(htp, "ipv4:127.0.0.1", 0, 16) != 0) {
    std::fprintf(stderr, "consumer_evhtp: bind failed\n");
    return 1;
  }
  auto hub = evsse::Hub::Create(base, {});
  if (!hub.ok()) return 1;
  evsse::Mounted events = evsse::evhtp::Mount(htp, "/events", hub->get());
  if (!events.ok()) {
    std::fprintf(stderr, "consumer_evhtp: %s\n",
                 events.status().ToString().c_str());
    return 1;
  }
  event_base_loop(base, EVLOOP_NONBLOCK);
  events.Unmount();  // reverse order of creation
  hub.value().reset();
  evhtp_unbind_socket(htp);
  evhtp_free(htp);
  event_base_free(base);
  std::printf("consumer_evhtp ok\n");
  return 0;
}
