// evsse::conf alone: a configuration text into options.
#include <evsse/conf.h>

#include <cstdio>

int main() {
  auto c = evsse::conf::LoadString("server { max_topics 42; }", "x.conf");
  if (!c.ok() || c.value().hub.max_topics != 42) {
    std::fprintf(stderr, "consumer_conf: %s\n",
                 c.ok() ? "wrong value" : c.status().ToString().c_str());
    return 1;
  }
  std::printf("consumer_conf ok\n");
  return 0;
}
