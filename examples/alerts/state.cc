// The application's bounded in-process state: recent alerts per team and
// dedup keys. Both are capped (entries per team, teams, keys) so a producer
// cannot grow them without limit.
#include <algorithm>

#include "app.h"

namespace alerts {

void RecentAlerts::Configure(size_t per_team, size_t max_teams) {
  per_team_ = per_team;
  max_teams_ = std::max<size_t>(1, max_teams);
  for (auto it = teams_.begin(); it != teams_.end();) {
    Trim(it->second);
    it = it->second.entries.empty() ? teams_.erase(it) : std::next(it);
  }
}

void RecentAlerts::Trim(Team& t) {
  while (t.entries.size() > per_team_) {
    t.entries.pop_front();
    --total_;
  }
}

void RecentAlerts::Add(const std::string& team, const std::string& id,
                       Json data) {
  if (per_team_ == 0) return;
  if (!teams_.count(team) && teams_.size() >= max_teams_) {
    // Forget the team that was quiet the longest.
    auto oldest = std::min_element(
        teams_.begin(), teams_.end(), [](const auto& a, const auto& b) {
          return a.second.last_seq < b.second.last_seq;
        });
    total_ -= oldest->second.entries.size();
    teams_.erase(oldest);
  }
  Team& t = teams_[team];
  Json alert;
  alert["id"] = id;
  for (auto& [k, v] : data.items()) alert[k] = v;
  t.entries.push_back({++seq_, std::move(alert)});
  t.last_seq = seq_;
  ++total_;
  Trim(t);
}

Json RecentAlerts::Get(const std::vector<std::string>& teams,
                       size_t limit) const {
  std::vector<const Entry*> all;
  for (const std::string& name : teams) {
    auto it = teams_.find(name);
    if (it == teams_.end()) continue;
    for (const Entry& e : it->second.entries) all.push_back(&e);
  }
  std::sort(all.begin(), all.end(),
            [](const Entry* a, const Entry* b) { return a->seq < b->seq; });
  size_t skip = all.size() > limit ? all.size() - limit : 0;
  Json out = Json::array();
  for (size_t i = skip; i < all.size(); ++i) out.push_back(all[i]->alert);
  return out;
}

Dedup::Entry* Dedup::Find(const std::string& key, int64_t now_ms) {
  Sweep(now_ms);
  auto it = map_.find(key);
  if (it == map_.end()) return nullptr;
  Entry& e = it->second;
  if (!e.id.empty() && e.expires_ms <= now_ms) {
    map_.erase(it);
    return nullptr;
  }
  return &e;
}

Dedup::Entry* Dedup::Start(const std::string& key) {
  // Past capacity, forget the oldest finished keys (in-flight ones stay:
  // requests wait on them).
  while (map_.size() >= capacity_ && !order_.empty()) {
    auto it = map_.find(order_.front().second);
    if (it != map_.end() && !it->second.id.empty() &&
        it->second.expires_ms == order_.front().first)
      map_.erase(it);
    order_.pop_front();
  }
  return &map_[key];
}

void Dedup::Finish(const std::string& key, const std::string& id,
                   int64_t now_ms, int64_t window_ms) {
  auto it = map_.find(key);
  if (it == map_.end()) return;
  it->second.id = id;
  it->second.expires_ms = now_ms + window_ms;
  order_.emplace_back(it->second.expires_ms, key);
}

void Dedup::Sweep(int64_t now_ms) {
  // order_ is in finishing order; with one window that is expiry order. A
  // window changed by a reload only delays a sweep: Find checks the expiry.
  while (!order_.empty() && order_.front().first <= now_ms) {
    auto it = map_.find(order_.front().second);
    if (it != map_.end() && !it->second.id.empty() &&
        it->second.expires_ms == order_.front().first)
      map_.erase(it);
    order_.pop_front();
  }
}

}  // namespace alerts
