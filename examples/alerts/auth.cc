// Who may publish and who may read. Tokens are compared in constant time and
// never logged; a subscriber token is looked up by comparing it with every
// configured token, so the time depends on the table, not on the guess.
#include <strings.h>

#include <algorithm>

#include "app.h"

namespace alerts {
namespace {

// CookieValue returns the value of cookie `name` in a Cookie header.
std::string CookieValue(const char* header, std::string_view name) {
  if (!header) return "";
  std::string_view h(header);
  while (!h.empty()) {
    size_t semi = h.find(';');
    std::string_view part = h.substr(0, semi);
    while (!part.empty() && part.front() == ' ') part.remove_prefix(1);
    size_t eq = part.find('=');
    if (eq != std::string_view::npos && part.substr(0, eq) == name) {
      std::string_view v = part.substr(eq + 1);
      while (!v.empty() && v.back() == ' ') v.remove_suffix(1);
      if (v.size() >= 2 && v.front() == '"' && v.back() == '"')
        v = v.substr(1, v.size() - 2);
      return std::string(v);
    }
    if (semi == std::string_view::npos) break;
    h.remove_prefix(semi + 1);
  }
  return "";
}

std::string Join(const std::vector<std::string>& v) {
  std::string out;
  for (const std::string& s : v) out += (out.empty() ? "" : ",") + s;
  return out;
}

}  // namespace

bool ConstantTimeEquals(std::string_view a, std::string_view b) {
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  size_t n = std::min(a.size(), b.size());
  for (size_t i = 0; i < n; ++i)
    diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  for (size_t i = n; i < b.size(); ++i)
    diff |= static_cast<unsigned char>(b[i]);
  return diff == 0;
}

bool CheckPublisher(const App& app, const char* authorization) {
  constexpr std::string_view kBearer = "Bearer ";
  if (!authorization || app.publish_token.empty()) return false;
  std::string_view given(authorization);
  if (given.size() <= kBearer.size() ||
      strncasecmp(given.data(), kBearer.data(), kBearer.size()) != 0)
    return false;
  given.remove_prefix(kBearer.size());
  return ConstantTimeEquals(given, app.publish_token);
}

evsse::AuthDecision AuthorizeTeams(const App& app, const char* cookie_header,
                                   const std::string& access_token,
                                   const std::vector<std::string>& teams) {
  const AlertOptions& a = app.config.alerts;
  if (!a.subscriber_auth) return evsse::AuthDecision::Allow();
  std::string token = CookieValue(cookie_header, "alerts_token");
  if (token.empty()) token = access_token;
  if (token.empty())
    return evsse::AuthDecision::Deny(
        401, "missing token: send the cookie alerts_token or ?access_token=");
  const std::vector<std::string>* allowed = nullptr;
  for (auto& [candidate, list] : a.subscriber_tokens)
    if (ConstantTimeEquals(token, candidate)) allowed = &list;
  if (!allowed) return evsse::AuthDecision::Deny(401, "unknown token");
  bool all = std::find(allowed->begin(), allowed->end(), "*") != allowed->end();
  for (const std::string& team : teams) {
    if (all ||
        std::find(allowed->begin(), allowed->end(), team) != allowed->end())
      continue;
    return evsse::AuthDecision::Deny(
        403, "this token may not read team \"" + team + "\"");
  }
  return evsse::AuthDecision::Allow();
}

evsse::AuthHook StreamAuth(App* app) {
  return [app](const evsse::Request& r) {
    std::string access_token = r.query("access_token").value_or("");
    evsse::AuthDecision d =
        AuthorizeTeams(*app, r.header("Cookie"), access_token, r.topics());
    // evsse answers stream requests itself; this is their access log line
    // (the decision, not the stream's end: the library has no such hook).
    Log(evsse::LogLevel::kInfo, "stream",
        {{"method", std::string(r.method())},
         {"path", std::string(r.path())},
         {"topics", Join(r.topics())},
         {"status", std::to_string(d.status)},
         {"peer", r.peer()}});
    return d;
  };
}

}  // namespace alerts
