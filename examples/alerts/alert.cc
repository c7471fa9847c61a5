// The POST /alerts body: strict JSON validation. Nothing is ignored: unknown,
// duplicate or nested fields, wrong types, unknown severities and empty or
// oversized fields are all refused with a message that names the field but
// never echoes the client's bytes (an unknown or duplicate field's name is
// quoted as escaped, printable ASCII).
#include <strings.h>

#include <set>

#include "app.h"

namespace alerts {
namespace {

constexpr const char* kSeverities[] = {"info", "warning", "critical"};
constexpr const char* kFields[] = {"severity", "title", "body", "team",
                                   "dedup_key"};

evsse::Status Bad(std::string message) {
  return evsse::InvalidArgumentError(std::move(message));
}

// Text checks one string field: present (unless optional), a string, not
// empty, at most `max` bytes.
evsse::Status Text(const nlohmann::json& j, const char* name, size_t max,
                   bool optional, std::string* out) {
  auto it = j.find(name);
  if (it == j.end()) {
    if (optional) return evsse::Status::Ok();
    return Bad(std::string("missing field \"") + name + "\"");
  }
  if (!it->is_string())
    return Bad(std::string("field \"") + name + "\" must be a string");
  const std::string& s = it->get_ref<const std::string&>();
  if (s.empty())
    return Bad(std::string("field \"") + name + "\" must not be empty");
  if (s.size() > max)
    return Bad(std::string("field \"") + name + "\" is longer than " +
               std::to_string(max) + " bytes");
  *out = s;
  return evsse::Status::Ok();
}

// AsciiJson quotes a client's field name for a message as a JSON string of
// printable ASCII: non-ASCII and DEL escaped too (dump() alone keeps them),
// so that the message is safe in a log line. Found by tests/fuzz/alert_fuzz.
std::string AsciiJson(const std::string& s) {
  return nlohmann::json(s).dump(-1, ' ', /*ensure_ascii=*/true);
}

}  // namespace

evsse::Status ValidateTeam(std::string_view team, size_t max_len) {
  bool ok = !team.empty() && team.size() <= max_len;
  for (char c : team)
    ok = ok && ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-');
  if (ok) return evsse::Status::Ok();
  return Bad("team must be 1 to " + std::to_string(max_len) +
             " characters of A-Z a-z 0-9 . _ -");
}

bool IsJsonContentType(const char* content_type) {
  if (!content_type) return false;
  std::string_view v(content_type);
  auto trim = [](std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t'))
      s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t'))
      s.remove_suffix(1);
    return s;
  };
  size_t semi = v.find(';');
  std::string_view type = trim(v.substr(0, semi));
  if (type.size() != 16 || strncasecmp(type.data(), "application/json", 16))
    return false;
  while (semi != std::string_view::npos) {
    v.remove_prefix(semi + 1);
    semi = v.find(';');
    std::string_view param = trim(v.substr(0, semi));
    if (param.empty()) continue;
    size_t eq = param.find('=');
    std::string_view key = trim(param.substr(0, eq));
    std::string_view val =
        eq == std::string_view::npos ? "" : trim(param.substr(eq + 1));
    if (val.size() >= 2 && val.front() == '"' && val.back() == '"')
      val = val.substr(1, val.size() - 2);
    // JSON is UTF-8 (RFC 8259); any other charset is not JSON.
    if (key.size() == 7 && strncasecmp(key.data(), "charset", 7) == 0 &&
        !(val.size() == 5 && strncasecmp(val.data(), "utf-8", 5) == 0))
      return false;
  }
  return true;
}

evsse::Result<Alert> ParseAlert(std::string_view body,
                                const AlertOptions& limits) {
  if (body.empty()) return Bad("empty body: expected a JSON object");
  std::set<std::string> keys;
  std::string duplicate;
  bool nested = false;
  // The parser callback sees each top-level key as it is read, so duplicate
  // keys (which a JSON object would silently collapse) are caught.
  auto cb = [&](int depth, nlohmann::json::parse_event_t event,
                nlohmann::json& parsed) {
    using E = nlohmann::json::parse_event_t;
    if (event == E::key && depth == 1 &&
        !keys.insert(parsed.get<std::string>()).second && duplicate.empty())
      duplicate = parsed.get<std::string>();
    if ((event == E::object_start || event == E::array_start) && depth >= 1)
      nested = true;
    return true;
  };
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(body.begin(), body.end(), cb);
  } catch (const nlohmann::json::parse_error& e) {
    return Bad("body is not valid JSON (at byte " + std::to_string(e.byte) +
               ")");
  } catch (const nlohmann::json::exception&) {
    // Not a parse_error: out_of_range 406 for a number beyond a double
    // ("1e999"). Found by tests/fuzz/alert_fuzz; uncaught, it would end the
    // server from inside the evhttp callback.
    return Bad("body is not valid JSON (a number is out of range)");
  }
  if (!j.is_object()) return Bad("the alert must be a JSON object");
  for (auto& [key, value] : j.items()) {
    bool known = false;
    for (const char* f : kFields) known = known || key == f;
    if (!known)
      return Bad("unknown field " + AsciiJson(key) +
                 " (fields: severity, title, body, team, dedup_key)");
  }
  if (!duplicate.empty()) return Bad("duplicate field " + AsciiJson(duplicate));
  if (nested) return Bad("fields must be strings, not objects or arrays");
  Alert a;
  if (evsse::Status s = Text(j, "severity", 16, false, &a.severity); !s.ok())
    return s;
  bool known = false;
  for (const char* sev : kSeverities) known = known || a.severity == sev;
  if (!known)
    return Bad("field \"severity\" must be one of info, warning, critical");
  if (evsse::Status s =
          Text(j, "title", limits.max_title_length, false, &a.title);
      !s.ok())
    return s;
  if (evsse::Status s = Text(j, "body", limits.max_body_length, false, &a.body);
      !s.ok())
    return s;
  if (evsse::Status s = Text(j, "team", 1024, false, &a.team); !s.ok())
    return s;
  if (evsse::Status s = ValidateTeam(a.team, limits.max_team_length); !s.ok())
    return Bad("field \"team\": " + s.message());
  if (evsse::Status s =
          Text(j, "dedup_key", limits.max_dedup_key_length, true, &a.dedup_key);
      !s.ok())
    return s;
  return a;
}

Json AlertData(const Alert& a, const std::string& ts) {
  Json j;
  j["severity"] = a.severity;
  j["team"] = a.team;
  j["title"] = a.title;
  j["body"] = a.body;
  if (!a.dedup_key.empty()) j["dedup_key"] = a.dedup_key;
  j["ts"] = ts;
  return j;
}

}  // namespace alerts
