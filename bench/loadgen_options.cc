#include "loadgen_options.h"

#include <cstdlib>

namespace evsse::bench {

const char kUsage[] =
    "usage: evsse-loadgen --port P [--host 127.0.0.1] [--subscribers N]\n"
    "  [--topics K] [--events M] [--rate R] [--size BYTES] [--server-pid PID]\n"
    "  [--name S] [--timeout-s T] [--idle-only] [--resume] [--publishers C]\n"
    "  [--pipeline D] [--connect-window W] [--settle-s S] [--idle-wait-s S]\n"
    "  [--token T] [--target evsse|nchan] [--redis-pid PID] [--warmup-s S]\n"
    "  [--defer-reads] [--tls [--cacert FILE] [--tls-name NAME]]\n"
    "  [--ports P1,P2,...] [--source-addrs A1,A2,...] [--reconnect]\n"
    "  [--subscribe-only] [--ready-file F] [--event-histograms]\n";

namespace {

// Split cuts a comma-separated list; empty items are kept (and rejected by
// the caller).
std::vector<std::string> Split(const std::string& s) {
  std::vector<std::string> out;
  size_t from = 0;
  for (;;) {
    size_t comma = s.find(',', from);
    out.push_back(s.substr(from, comma - from));
    if (comma == std::string::npos) return out;
    from = comma + 1;
  }
}

}  // namespace

bool ParseArgs(int argc, char** argv, Options* o) {
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&](const char** v) {
      if (i + 1 >= argc) return false;
      *v = argv[++i];
      return true;
    };
    const char* v = nullptr;
    if (a == "--idle-only") {
      o->idle_only = true;
    } else if (a == "--resume") {
      o->resume = true;
    } else if (a == "--defer-reads") {
      o->defer_reads = true;
    } else if (a == "--tls") {
      o->tls = true;
    } else if (a == "--reconnect") {
      o->reconnect = true;
    } else if (a == "--subscribe-only") {
      o->subscribe_only = true;
    } else if (a == "--event-histograms") {
      o->event_histograms = true;
    } else if (!next(&v)) {
      return false;
    } else if (a == "--host") {
      o->host = v;
    } else if (a == "--port") {
      o->port = std::atoi(v);
    } else if (a == "--subscribers") {
      o->subscribers = std::strtoull(v, nullptr, 10);
    } else if (a == "--topics") {
      o->topics = std::strtoull(v, nullptr, 10);
    } else if (a == "--events") {
      o->events = std::strtoull(v, nullptr, 10);
    } else if (a == "--rate") {
      o->rate = std::atof(v);
    } else if (a == "--size") {
      o->size = std::strtoull(v, nullptr, 10);
    } else if (a == "--server-pid") {
      o->server_pid = static_cast<pid_t>(std::atoi(v));
    } else if (a == "--name") {
      o->name = v;
    } else if (a == "--timeout-s") {
      o->timeout_s = std::atof(v);
    } else if (a == "--publishers") {
      o->publishers = std::strtoull(v, nullptr, 10);
    } else if (a == "--pipeline") {
      o->pipeline = std::strtoull(v, nullptr, 10);
    } else if (a == "--connect-window") {
      o->connect_window = std::strtoull(v, nullptr, 10);
    } else if (a == "--settle-s") {
      o->settle_s = std::atof(v);
    } else if (a == "--idle-wait-s") {
      o->idle_wait_s = std::atof(v);
    } else if (a == "--token") {
      o->token = v;
    } else if (a == "--target") {
      o->target = v;
    } else if (a == "--redis-pid") {
      o->redis_pid = static_cast<pid_t>(std::atoi(v));
    } else if (a == "--cacert") {
      o->cacert = v;
    } else if (a == "--tls-name") {
      o->tls_name = v;
    } else if (a == "--warmup-s") {
      o->warmup_s = std::atof(v);
    } else if (a == "--ports") {
      for (const std::string& p : Split(v)) {
        int port = std::atoi(p.c_str());
        if (port <= 0 || port > 65535) return false;
        o->ports.push_back(port);
      }
    } else if (a == "--source-addrs") {
      for (const std::string& addr : Split(v)) {
        if (addr.empty()) return false;
        o->source_addrs.push_back(addr);
      }
    } else if (a == "--ready-file") {
      o->ready_file = v;
    } else {
      return false;
    }
  }
  if (o->port == 0 && !o->ports.empty()) o->port = o->ports.front();
  return o->port > 0 && o->topics > 0 && o->publishers > 0 && o->pipeline > 0 &&
         o->connect_window > 0 && o->timeout_s > 0 && o->rate >= 0 &&
         !(o->idle_only && o->resume) &&
         !(o->defer_reads && (o->idle_only || o->resume)) &&
         (!o->resume || o->events > 0) &&
         (o->target == "evsse" || o->target == "nchan") && o->warmup_s >= 0 &&
         (o->tls || (o->cacert.empty() && o->tls_name.empty())) &&
         (!o->subscribe_only ||
          (o->events > 0 && !o->idle_only && !o->resume && !o->defer_reads)) &&
         (!o->reconnect || o->subscribe_only);
}

}  // namespace evsse::bench
