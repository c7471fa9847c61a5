#include "failover_support.h"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <map>
#include <set>

#include "node_process.h"

namespace evsse::testing {

using Clock = std::chrono::steady_clock;

void SequencePublisher::Start() {
  stop_ = false;
  thread_ = std::thread([this] { Run(); });
}

void SequencePublisher::Stop() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
}

PublisherCounts SequencePublisher::Counts() const {
  std::lock_guard<std::mutex> lock(mu_);
  return counts_;
}

std::vector<Outcome> SequencePublisher::Outcomes() const {
  std::lock_guard<std::mutex> lock(mu_);
  return outcomes_;
}

void SequencePublisher::Run() {
  const auto period = std::chrono::microseconds(1000000 / options_.rate);
  auto next = Clock::now();
  size_t node = 0;
  for (size_t seq = 0; !stop_; ++seq) {
    Outcome o = PublishOne(seq, &node);
    {
      std::lock_guard<std::mutex> lock(mu_);
      counts_.accepted += o.result == Outcome::kAccepted;
      counts_.rejected += o.result == Outcome::kRejected;
      counts_.unknown += o.result == Outcome::kUnknown;
      counts_.retried += static_cast<size_t>(o.tries - 1);
      outcomes_.push_back(std::move(o));
    }
    // A steady rate; after a stall (an outage) resume it, without a burst.
    next += period;
    auto now = Clock::now();
    if (next < now) next = now;
    std::this_thread::sleep_until(next);
  }
}

Outcome SequencePublisher::PublishOne(size_t seq, size_t* next_node) {
  Outcome o;
  o.seq = seq;
  o.topic = options_.topics[seq % options_.topics.size()];
  const std::string target = "/publish?topic=" + o.topic + "&event=n";
  for (size_t i = 0; i < options_.ports.size(); ++i) {
    int port = options_.ports[(*next_node)++ % options_.ports.size()];
    PostReply r = BlockingPost(port, target, std::to_string(seq), 3000);
    ++o.tries;
    std::string id = IdOf(r.body);
    if (r.status == 200 && !id.empty()) {
      o.result = Outcome::kAccepted;
      o.id = id;
      return o;
    }
    if ((r.status == 0 && !r.sent) || r.status == 503) {
      o.error = r.status == 0 ? "connection refused" : "503 " + r.body;
      continue;  // not published: another node may take it
    }
    o.result = Outcome::kUnknown;
    o.error = r.status == 0 ? "sent, no answer"
                            : std::to_string(r.status) + " " + r.body;
    return o;
  }
  o.result = Outcome::kRejected;
  return o;
}

namespace {

// PositionOf returns `topic`'s part of an event id: the whole id for one
// topic, its element of a composite cursor (one per topic, in subscription
// order) otherwise.
std::string PositionOf(const std::string& id,
                       const std::vector<std::string>& topics,
                       const std::string& topic) {
  size_t index =
      std::find(topics.begin(), topics.end(), topic) - topics.begin();
  size_t start = 0;
  for (size_t i = 0; i < index; ++i) {
    start = id.find(',', start);
    if (start == std::string::npos) return "";
    ++start;
  }
  return id.substr(start, id.find(',', start) - start);
}

}  // namespace

SequenceCheck CheckSequences(const std::vector<Outcome>& outcomes,
                             const std::vector<SubView>& subs) {
  SequenceCheck c;
  auto fail = [&](size_t k, const std::string& what) {
    if (c.failures.size() < 20)
      c.failures.push_back("client " + std::to_string(k) + ": " + what);
  };
  // Unknown outcomes: which clients of the topic got them, with which id.
  std::map<size_t, std::set<size_t>> unknown_got;
  std::map<size_t, std::string> unknown_id;
  for (size_t k = 0; k < subs.size(); ++k) {
    const SubView& s = subs[k];
    c.gaps += static_cast<size_t>(s.gaps);
    if (s.gaps > 0) fail(k, std::to_string(s.gaps) + " gap events");
    std::set<size_t> got;
    std::map<std::string, size_t> last_of_topic;
    for (const auto& e : *s.events) {
      if (e.type != "n") continue;
      ++c.delivered;
      size_t seq = std::strtoull(e.data.c_str(), nullptr, 10);
      if (seq >= outcomes.size() || std::to_string(seq) != e.data) {
        fail(k, "an event nobody published: " + e.data);
        continue;
      }
      const Outcome& o = outcomes[seq];
      if (std::find(s.topics.begin(), s.topics.end(), o.topic) ==
          s.topics.end()) {
        fail(k, "seq " + e.data + " of topic " + o.topic);
        continue;
      }
      if (!got.insert(seq).second) {
        ++c.duplicates;
        fail(k, "seq " + e.data + " twice");
        continue;
      }
      auto last = last_of_topic.find(o.topic);
      if (last != last_of_topic.end() && last->second > seq)
        fail(k, "seq " + e.data + " after " + std::to_string(last->second));
      last_of_topic[o.topic] = seq;
      if (o.result == Outcome::kRejected) {
        fail(k,
             "seq " + e.data + " was refused (" + o.error + ") but delivered");
      } else if (o.result == Outcome::kAccepted) {
        if (PositionOf(e.last_event_id, s.topics, o.topic) != o.id)
          fail(k, "seq " + e.data + " has id " + e.last_event_id +
                      ", its publisher got " + o.id);
      } else {
        unknown_got[seq].insert(k);
        std::string id = PositionOf(e.last_event_id, s.topics, o.topic);
        auto [it, fresh] = unknown_id.emplace(seq, id);
        if (!fresh && it->second != id)
          fail(k,
               "seq " + e.data + " has id " + id + ", elsewhere " + it->second);
      }
    }
    for (const Outcome& o : outcomes) {
      if (o.result != Outcome::kAccepted || got.count(o.seq) != 0) continue;
      if (std::find(s.topics.begin(), s.topics.end(), o.topic) ==
          s.topics.end())
        continue;
      ++c.losses;
      fail(k, "accepted seq " + std::to_string(o.seq) + " (" + o.topic + ", " +
                  o.id + ") missing");
    }
  }
  // An unknown event is in its topic's stream or not: all or none.
  for (auto& [seq, clients] : unknown_got) {
    for (size_t k = 0; k < subs.size(); ++k) {
      const auto& t = subs[k].topics;
      if (std::find(t.begin(), t.end(), outcomes[seq].topic) != t.end() &&
          clients.count(k) == 0) {
        ++c.losses;
        fail(k, "missing seq " + std::to_string(seq) +
                    " (unknown outcome) that other clients got");
      }
    }
  }
  return c;
}

}  // namespace evsse::testing
