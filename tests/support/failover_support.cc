#include "failover_support.h"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <map>
#include <set>

#include "node_process.h"
#include "run_loop.h"

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

std::string SequenceClients::Url(int node,
                                 const std::vector<std::string>& topics) const {
  std::string u =
      "http://127.0.0.1:" + std::to_string(ports_[node]) + "/events?";
  for (size_t i = 0; i < topics.size(); ++i)
    u += (i ? "&topic=" : "topic=") + topics[i];
  return u;
}

bool SequenceClients::Start(std::string* error) {
  const int n_nodes = static_cast<int>(ports_.size());
  const size_t n_topics = topics_.size();
  for (int n = 0; n < n_nodes; ++n) {
    for (auto topics : std::vector<std::vector<std::string>>{
             {topics_[n % n_topics]}, {topics_[(n + 1) % n_topics]}, topics_}) {
      auto s = std::make_unique<SequenceSub>();
      s->topics = topics;
      ClientOptions o;
      o.url = Url(n, topics);
      for (int k = 1; k < n_nodes; ++k)
        o.fallback_urls.push_back(Url((n + k) % n_nodes, topics));
      o.initial_retry = std::chrono::milliseconds(100);
      o.max_backoff = std::chrono::milliseconds(1000);
      o.connect_timeout = std::chrono::milliseconds(3000);
      auto c = Client::Create(base_, o);
      if (!c.ok()) {
        *error = c.status().ToString();
        return false;
      }
      SequenceSub* raw = s.get();
      s->client = std::move(c).value();
      s->client->OnOpen([raw] { raw->open_at.push_back(Clock::now()); });
      s->client->OnEvent([raw](const Client::Event& e) {
        if (e.type == "gap") ++raw->gaps;
        raw->events.push_back(e);
        raw->at.push_back(Clock::now());
      });
      s->client->OnError([raw](const Status&) { ++raw->errors; });
      if (Status st = s->client->Start(); !st.ok()) {
        *error = st.ToString();
        return false;
      }
      subs_.push_back(std::move(s));
    }
  }
  return true;
}

bool SequenceClients::WaitLive() {
  for (int i = 0; i < 50; ++i) {
    std::map<std::string, std::string> sent;
    for (const std::string& t : topics_) {
      std::string data = "probe-" + t + "-" + std::to_string(i);
      if (BlockingPost(ports_[i % ports_.size()],
                       "/publish?topic=" + t + "&event=probe", data)
              .status == 200)
        sent[t] = data;
    }
    if (sent.size() != topics_.size()) {
      RunLoopFor(base_, std::chrono::milliseconds(50));
      continue;
    }
    bool live = RunLoopUntil(
        base_,
        [&] {
          for (auto& s : subs_)
            for (const std::string& t : s->topics) {
              bool got = false;
              for (auto& e : s->events) got |= e.data == sent[t];
              if (!got) return false;
            }
          return true;
        },
        std::chrono::milliseconds(300));
    if (live) return true;
  }
  return false;
}

bool SequenceClients::HasAllAccepted(const SequenceSub& s,
                                     const std::vector<Outcome>& outcomes) {
  std::set<std::string> got;
  for (auto& e : s.events)
    if (e.type == "n") got.insert(e.data);
  for (const Outcome& o : outcomes)
    if (o.result == Outcome::kAccepted &&
        std::count(s.topics.begin(), s.topics.end(), o.topic) &&
        got.count(std::to_string(o.seq)) == 0)
      return false;
  return true;
}

bool SequenceClients::WaitAll(const std::vector<Outcome>& outcomes,
                              std::chrono::milliseconds timeout) {
  return RunLoopUntil(
      base_,
      [&] {
        for (auto& s : subs_)
          if (!HasAllAccepted(*s, outcomes)) return false;
        return true;
      },
      timeout);
}

std::vector<SubView> SequenceClients::Views() const {
  std::vector<SubView> v;
  for (auto& s : subs_) v.push_back({s->topics, &s->events, s->gaps});
  return v;
}

}  // namespace evsse::testing
