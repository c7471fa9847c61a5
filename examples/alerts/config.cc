// The alert server's directives, registered with evsse::conf::Directives.
// Names, ranges and messages are the ones evsse-alerts has always had.
#include "config.h"

#include <algorithm>
#include <utility>

namespace alerts {
namespace {

using evsse::conf::kServer;
using evsse::conf::Quote;

constexpr uint64_t kK = 1024, kM = 1024 * kK;
constexpr evsse::Millis kDay{24 * 3600 * 1000};

std::string TeamName(std::string_view s) {
  if (s == "*") return "";
  if (s.empty() || s.size() > 128) return "invalid team (1 to 128 bytes)";
  for (char c : s) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.';
    if (!ok) return "invalid team (use A-Z a-z 0-9 - _ .)";
  }
  return "";
}

// subscriber_token TOKEN TEAM...: the token is a secret (never quoted), the
// teams are not; one table entry per directive.
evsse::conf::AppDirective SubscriberToken(AlertOptions* out) {
  evsse::conf::AppDirective d;
  d.info = {
      "subscriber_token",  kServer, 31, 2, 65, evsse::conf::Setter::kWords,
      /*repeatable=*/true,
      /*secret=*/true,     1,       256};
  d.set = [out](const evsse::conf::Value& v) -> std::string {
    const std::string& token = v.words[0];
    const std::string hidden = " (value hidden)";
    if (token.empty()) return "must not be empty" + hidden;
    if (token.size() > 256) return "too long, at most 256 bytes" + hidden;
    if (std::string p = evsse::conf::CheckToken68(token); !p.empty())
      return p + hidden;
    std::vector<std::string> teams;
    for (size_t i = 1; i < v.words.size(); ++i) {
      const std::string& team = v.words[i];
      if (std::string p = TeamName(team); !p.empty())
        return p + " " + Quote(team);
      if (std::find(teams.begin(), teams.end(), team) != teams.end())
        return "duplicate team " + Quote(team);
      teams.push_back(team);
    }
    if (!out->subscriber_tokens.emplace(token, std::move(teams)).second)
      return "duplicate token (the same token is listed twice)";
    return "";
  };
  return d;
}

}  // namespace

evsse::conf::Directives AlertDirectives(AlertOptions* out) {
  evsse::conf::Directives d;
  d.String("publish_token", kServer, 0, 256, evsse::conf::CheckToken68,
           /*secret=*/true, &out->publish_token)
      .Bool("subscriber_auth", kServer, &out->subscriber_auth)
      .Add(SubscriberToken(out))
      .Size("max_alert_bytes", kServer, 256, 16 * kM, &out->max_alert_bytes)
      .Count("max_title_length", kServer, 1, 65536, &out->max_title_length)
      .Count("max_body_length", kServer, 1, 16 * kM, &out->max_body_length)
      .Count("max_team_length", kServer, 1, 128, &out->max_team_length)
      .Count("max_dedup_key_length", kServer, 1, 1024,
             &out->max_dedup_key_length)
      .Duration("dedup_window", kServer, evsse::Millis(0), kDay,
                &out->dedup_window)
      .Count("max_dedup_keys", kServer, 1, 10000000, &out->max_dedup_keys)
      .Count("recent_alerts", kServer, 0, 10000, &out->recent_alerts);
  d.Check(kServer,
          [out](const evsse::conf::ServerConfig& c,
                const evsse::conf::SetAt& set_at) -> evsse::Status {
            if (out->max_team_length > c.hub.max_topic_length) {
              const evsse::conf::Node* n = set_at("max_team_length");
              if (!n) n = set_at("max_topic_length");
              return evsse::conf::DirectiveError(
                  *n, "max_team_length " +
                          std::to_string(out->max_team_length) +
                          " is above max_topic_length " +
                          std::to_string(c.hub.max_topic_length) +
                          " (a team is a topic)");
            }
            if (out->subscriber_auth && out->subscriber_tokens.empty())
              return evsse::conf::DirectiveError(
                  *set_at("subscriber_auth"),
                  "subscriber_auth on needs at least one subscriber_token");
            return evsse::Status::Ok();
          });
  return d;
}

namespace {

template <class Load>
evsse::Result<Config> LoadWith(Load load) {
  Config c;
  evsse::conf::Directives d = AlertDirectives(&c.alerts);
  auto r = load(d);
  if (!r.ok()) return r.status();
  static_cast<evsse::conf::ServerConfig&>(c) = std::move(*r);
  return c;
}

}  // namespace

evsse::Result<Config> LoadConfigFile(const std::string& path,
                                     const evsse::conf::ParseOptions& options) {
  return LoadWith([&](const evsse::conf::Directives& d) {
    return evsse::conf::LoadFile(path, options, d);
  });
}

evsse::Result<Config> LoadConfigString(
    std::string_view text, const std::string& file,
    const evsse::conf::ParseOptions& options) {
  return LoadWith([&](const evsse::conf::Directives& d) {
    return evsse::conf::LoadString(text, file, options, d);
  });
}

}  // namespace alerts
