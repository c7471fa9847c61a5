// evsse::kafka: serve Kafka topics over SSE, resumable by partition offsets.
//
// Attach connects a Hub to a Kafka cluster (librdkafka). From then on:
//  - The evsse topic "<topic>@<p>" is partition p of the Kafka topic
//    <topic>. A bare "<topic>" requested by a subscriber is the whole topic:
//    the link expands it (Backend::Expand, from the cluster's metadata) into
//    "<topic>@0" ... "<topic>@<N-1>" before the response starts ("<topic>@0"
//    while the topic does not exist). When partitions are added later, the
//    streams that asked for the bare topic end cleanly (their cursor sent
//    as a last id) and their reconnect follows the new partitions from
//    their start (BackendSink::ExpansionChanged, Backend::FitCursor).
//    (Called directly, Watch and Fetch read a bare name as its partition 0.)
//  - An event's id names its partition and offset: epoch p+1, value
//    offset+1 (base 36 epoch, see evsse/pubsub/cursor.h): "3.43" is
//    partition 2, offset 42. A connection's cursor holds one such position
//    per partition, so a client resumes on any node, which seeks each
//    partition just past its position (see module/README.md, "Why a Kafka
//    resume loses and repeats nothing").
//  - Every node reads the partitions its subscribers follow (no consumer
//    group: assign and seek), keeps the Hub's recent window in memory and
//    reads older records from Kafka for resuming clients, one read shared
//    by all the sessions that need it. A cursor older than the partition's
//    log start, or past its end (the topic was deleted and created again),
//    gets the gap event. A partition that no longer holds the offset a node
//    reads next is resynced (BackendSink::Restarted when its log ends before
//    the node's position). A partition that does not exist yet is read from
//    its start once it is created.
//  - A record's value is the event's data; its type is the value of the
//    header `event_header` ("sse-event"), else "message". Records whose
//    value is not UTF-8 or whose type holds CR, LF or NUL (or is not UTF-8)
//    are skipped and counted (LinkStats::records_skipped).
//  - Hub::Publish and POST /publish produce to Kafka (idempotent producer,
//    acks=all) to the partition the evsse topic names, or for a bare topic
//    the one librdkafka's partitioner picks (the id names it). The publisher
//    gets the record's id once Kafka acknowledged it; kUnavailable (503) when
//    it was not stored, kUnknown (504) when it may have been.
//
// Threads: Attach and the Link belong to the Hub's loop thread. librdkafka's
// own threads hand records over through a queue event fd; blocking calls
// (watermarks, replay reads) run on one worker thread of the link.
#ifndef EVSSE_KAFKA_H_
#define EVSSE_KAFKA_H_

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "evsse/export.h"
#include "evsse/ext/backend.h"
#include "evsse/millis.h"
#include "evsse/status.h"

namespace evsse {
class Hub;
}

namespace evsse::kafka {

struct KafkaOptions {
  // Bootstrap brokers, "host:port" each (at least one).
  std::vector<std::string> brokers;
  // The record header whose value is the SSE event type.
  std::string event_header = "sse-event";
  std::string client_id = "evsse";
  // librdkafka settings passed through to every client of the link, in
  // order, after evsse's own (e.g. {"security.protocol", "sasl_ssl"},
  // {"sasl.mechanisms", "PLAIN"}, {"ssl.ca.location", "/etc/ca.pem"}).
  std::vector<std::pair<std::string, std::string>> settings;
  // A publish not acknowledged within this gets kUnknown or kUnavailable
  // (librdkafka's delivery.timeout.ms).
  Millis publish_timeout{10000};
  // A replay read (or a watermark query) not done within this fails: the
  // resuming client is ended and retries.
  Millis fetch_timeout{5000};
  // How often partition counts are re-read (partitions added to a topic):
  // librdkafka's topic.metadata.refresh.interval.ms, and the link's own
  // check of the bare topics its streams asked for.
  Millis metadata_refresh{5000};
};

// Validate checks options without connecting: brokers, header name,
// and that librdkafka accepts every pass-through setting.
EVSSE_API Status Validate(const KafkaOptions& options);

// SplitTopic splits an evsse topic into Kafka topic and partition:
// "orders@2" -> ("orders", 2); "orders" -> ("orders", -1). Fails on a bad
// partition number or an empty Kafka topic.
EVSSE_API Status SplitTopic(std::string_view topic, std::string* kafka_topic,
                            int32_t* partition);

// LinkStats: what every store reports (BackendStats: replay_fetches are
// replay reads from Kafka, reconnects the times the cluster came back),
// and what only Kafka has.
struct LinkStats : BackendStats {
  uint64_t records_delivered = 0;  // records handed to the Hub
  uint64_t records_skipped = 0;    // not UTF-8, or a bad type header
};

class EVSSE_API Link {
 public:
  virtual ~Link() = default;
  virtual LinkStats stats() const = 0;
};

// Attach connects `hub` to Kafka. Fails at once on bad options; broker
// trouble is reported through the Hub's log and stats (librdkafka keeps
// retrying). Destroy the Link on the loop thread, before or after the Hub
// (a Hub that goes first detaches it: module/README.md, "Lifetime").
EVSSE_API Result<std::unique_ptr<Link>> Attach(Hub* hub, KafkaOptions options);

}  // namespace evsse::kafka

#endif  // EVSSE_KAFKA_H_
