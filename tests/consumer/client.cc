// evsse::client alone: the stream parser.
#include <evsse/stream_parser.h>

#include <cstdio>

int main() {
  evsse::StreamParser parser;
  int events = 0;
  parser.on_event = [&](const evsse::StreamParser::Event& e) {
    events += e.data == "hello" && e.last_event_id == "1";
  };
  if (!parser.Feed("id: 1\ndata: hello\n\n").ok() || events != 1) {
    std::fprintf(stderr, "consumer_client: %d events\n", events);
    return 1;
  }
  std::printf("consumer_client ok\n");
  return 0;
}
