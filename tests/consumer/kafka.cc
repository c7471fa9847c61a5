// evsse::kafka alone: options without a broker are refused before any
// connect, and a topic name splits into Kafka topic and partition.
#include <event2/event.h>
#include <evsse/hub.h>
#include <evsse/kafka.h>

#include <cstdio>
#include <string>

int main() {
  event_base* base = event_base_new();
  auto hub = evsse::Hub::Create(base, {});
  if (!hub.ok()) return 1;
  evsse::kafka::KafkaOptions options;  // no brokers
  auto link = evsse::kafka::Attach(hub->get(), options);
  std::string topic;
  int32_t partition = -1;
  bool ok = !link.ok() &&
            evsse::kafka::SplitTopic("orders@2", &topic, &partition).ok() &&
            topic == "orders" && partition == 2;
  hub.value().reset();
  event_base_free(base);
  std::printf("consumer_kafka %s\n", ok ? "ok" : "failed");
  return ok ? 0 : 1;
}
