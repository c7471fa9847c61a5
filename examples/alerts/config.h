// The alert server's own configuration: its settings (AlertOptions) and the
// directives that set them, registered with the configuration language
// (evsse::conf::Directives). The library knows nothing of alerts: this file
// is the application's, and conf/alerts.conf uses both sets of directives.
#ifndef EVSSE_EXAMPLES_ALERTS_CONFIG_H_
#define EVSSE_EXAMPLES_ALERTS_CONFIG_H_

#include <evsse/conf.h>

#include <cstddef>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace alerts {

// AlertOptions: the alert server's settings (the server block's directives
// publish_token, subscriber_auth, subscriber_token, max_alert_bytes, ...;
// examples/alerts/README.md lists them with their defaults).
struct AlertOptions {
  // Bearer token for POST /alerts. Empty: the ALERTS_TOKEN environment
  // variable is used.
  std::string publish_token;
  // When on, streams and /alerts/recent need a token (cookie alerts_token or
  // query access_token) listed in subscriber_tokens for every team asked.
  bool subscriber_auth = false;
  // token -> teams it may read ("*": every team).
  std::map<std::string, std::vector<std::string>> subscriber_tokens;
  size_t max_alert_bytes = 16 << 10;  // request body of POST /alerts
  size_t max_title_length = 200;      // bytes
  size_t max_body_length = 8192;      // bytes
  size_t max_team_length = 64;        // bytes; a team is a topic
  size_t max_dedup_key_length = 128;  // bytes
  // A repeat of (team, dedup_key) within this window answers the first id
  // without publishing. 0 = no deduplication.
  evsse::Millis dedup_window{300000};
  size_t max_dedup_keys = 100000;  // remembered keys, oldest dropped first
  size_t recent_alerts = 100;      // kept per team for GET /alerts/recent
};

// Config: what one file describes, the library's part and the application's.
struct Config : evsse::conf::ServerConfig {
  AlertOptions alerts;
};

// AlertDirectives: the alert server's directives, landing in `*out` (which
// must outlive the Build), with their rules (max_team_length at most
// max_topic_length; subscriber_auth on needs a subscriber_token).
evsse::conf::Directives AlertDirectives(AlertOptions* out);

// LoadConfigFile / LoadConfigString: the library's LoadFile / LoadString
// with the alert directives.
evsse::Result<Config> LoadConfigFile(
    const std::string& path, const evsse::conf::ParseOptions& options = {});
evsse::Result<Config> LoadConfigString(
    std::string_view text, const std::string& file = "<string>",
    const evsse::conf::ParseOptions& options = {});

}  // namespace alerts

#endif  // EVSSE_EXAMPLES_ALERTS_CONFIG_H_
