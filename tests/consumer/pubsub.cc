// evsse::pubsub alone: ids and cursors.
#include <evsse/pubsub/cursor.h>

#include <cstdio>
#include <string>

int main() {
  std::string id;
  evsse::pubsub::AppendPosition(id, {35, {7, 0}});
  if (id != "z.7") {
    std::fprintf(stderr, "consumer_pubsub: got %s\n", id.c_str());
    return 1;
  }
  std::printf("consumer_pubsub ok\n");
  return 0;
}
