// kafka_mock_cluster: librdkafka's mock Kafka cluster (rdkafka_mock.h) as a
// process, for tests and the quick start. It starts BROKERS (default 3)
// brokers on loopback, prints
//   bootstrap HOST:PORT,HOST:PORT,...
// and then reads commands from stdin, one a line, answering each with
// "ok [...]" or "error <why>":
//   create TOPIC PARTITIONS        make a topic (replication factor 1..3)
//   down BROKER | up BROKER        take a broker (1..N) down or back
//   leader TOPIC PARTITION BROKER  move a partition's leader
//   fill TOPIC PARTITION MIB       produce MIB MiB of filler records: the
//                                  mock keeps about 5 MiB per partition,
//                                  so this moves the log start (retention)
//   watermarks TOPIC PARTITION     "ok LOW HIGH"
//   hide TOPIC | show TOPIC        metadata requests answer that TOPIC does
//                                  not exist (hide; it is made, with the
//                                  mock's default 4 partitions, if need be)
//                                  or again what it is (show)
//   fetcherror                     the next Fetch request (from any client)
//                                  fails with OFFSET_OUT_OF_RANGE: what a
//                                  consumer sees when its partition's log no
//                                  longer holds its offset
// It ends at EOF on stdin (or "quit"). The librdkafka 2.0.2 mock has no call
// to add partitions to a topic, delete a topic or set a log start.
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

namespace {

std::string Err(rd_kafka_resp_err_t e) {
  return e == RD_KAFKA_RESP_ERR_NO_ERROR
             ? "ok"
             : std::string("error ") + rd_kafka_err2str(e);
}

rd_kafka_t* NewClient(rd_kafka_type_t type, const char* bootstrap) {
  char err[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  if (bootstrap)
    rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap, err, sizeof(err));
  rd_kafka_conf_set(conf, "log_level", "2", err, sizeof(err));
  rd_kafka_t* rk = rd_kafka_new(type, conf, err, sizeof(err));
  if (!rk) {
    std::fprintf(stderr, "kafka_mock_cluster: %s\n", err);
    std::exit(1);
  }
  return rk;
}

std::string Fill(rd_kafka_t* producer, const std::string& topic,
                 int32_t partition, int mib) {
  std::string record(100 * 1024, 'x');
  int count = mib * 1024 / 100 + 1;
  for (int i = 0; i < count; ++i) {
    while (true) {
      rd_kafka_resp_err_t e = rd_kafka_producev(
          producer, RD_KAFKA_V_TOPIC(topic.c_str()),
          RD_KAFKA_V_PARTITION(partition),
          RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
          RD_KAFKA_V_VALUE(record.data(), record.size()), RD_KAFKA_V_END);
      if (e == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
        rd_kafka_poll(producer, 100);
        continue;
      }
      if (e != RD_KAFKA_RESP_ERR_NO_ERROR) return Err(e);
      break;
    }
    rd_kafka_poll(producer, 0);
  }
  return Err(rd_kafka_flush(producer, 30000));
}

}  // namespace

int main(int argc, char** argv) {
  int brokers = argc > 1 ? std::atoi(argv[1]) : 3;
  if (brokers < 1) {
    std::fprintf(stderr, "usage: kafka_mock_cluster [BROKERS]\n");
    return 2;
  }
  rd_kafka_t* owner = NewClient(RD_KAFKA_PRODUCER, nullptr);
  rd_kafka_mock_cluster_t* mc = rd_kafka_mock_cluster_new(owner, brokers);
  if (!mc) {
    std::fprintf(stderr, "kafka_mock_cluster: cannot start the cluster\n");
    return 1;
  }
  const char* bootstrap = rd_kafka_mock_cluster_bootstraps(mc);
  rd_kafka_t* producer = NewClient(RD_KAFKA_PRODUCER, bootstrap);
  rd_kafka_t* consumer = NewClient(RD_KAFKA_CONSUMER, bootstrap);
  std::printf("bootstrap %s\n", bootstrap);
  std::fflush(stdout);

  std::string line;
  while (std::getline(std::cin, line)) {
    std::istringstream in(line);
    std::string cmd, topic;
    in >> cmd;
    std::string answer;
    if (cmd.empty()) continue;
    if (cmd == "quit") break;
    if (cmd == "create") {
      int parts = 0;
      in >> topic >> parts;
      answer = !in ? "error usage: create TOPIC PARTITIONS"
                   : Err(rd_kafka_mock_topic_create(mc, topic.c_str(), parts,
                                                    brokers < 3 ? brokers : 3));
    } else if (cmd == "down" || cmd == "up") {
      int32_t id = 0;
      in >> id;
      answer = !in             ? "error usage: down|up BROKER"
               : cmd == "down" ? Err(rd_kafka_mock_broker_set_down(mc, id))
                               : Err(rd_kafka_mock_broker_set_up(mc, id));
    } else if (cmd == "leader") {
      int32_t p = 0, id = 0;
      in >> topic >> p >> id;
      answer = !in ? "error usage: leader TOPIC PARTITION BROKER"
                   : Err(rd_kafka_mock_partition_set_leader(mc, topic.c_str(),
                                                            p, id));
    } else if (cmd == "fill") {
      int32_t p = 0;
      int mib = 0;
      in >> topic >> p >> mib;
      answer = !in ? "error usage: fill TOPIC PARTITION MIB"
                   : Fill(producer, topic, p, mib);
    } else if (cmd == "watermarks") {
      int32_t p = 0;
      in >> topic >> p;
      int64_t lo = 0, hi = 0;
      rd_kafka_resp_err_t e = rd_kafka_query_watermark_offsets(
          consumer, topic.c_str(), p, &lo, &hi, 5000);
      answer = !in ? "error usage: watermarks TOPIC PARTITION"
               : e ? Err(e)
                   : "ok " + std::to_string(lo) + " " + std::to_string(hi);
    } else if (cmd == "hide" || cmd == "show") {
      in >> topic;
      if (!in) {
        answer = "error usage: hide|show TOPIC";
      } else {
        rd_kafka_mock_topic_set_error(
            mc, topic.c_str(),
            cmd == "hide" ? RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART
                          : RD_KAFKA_RESP_ERR_NO_ERROR);
        answer = "ok";
      }
    } else if (cmd == "fetcherror") {
      // ApiKey 1 is Fetch (rdkafka_protocol.h is not installed).
      rd_kafka_mock_push_request_errors(mc, 1, 1,
                                        RD_KAFKA_RESP_ERR_OFFSET_OUT_OF_RANGE);
      answer = "ok";
    } else {
      answer = "error unknown command " + cmd;
    }
    std::printf("%s\n", answer.c_str());
    std::fflush(stdout);
  }
  rd_kafka_destroy(consumer);
  rd_kafka_destroy(producer);
  rd_kafka_mock_cluster_destroy(mc);
  rd_kafka_destroy(owner);
  return 0;
}
