// Fuzz target: the alert server's POST /alerts validation
// (examples/alerts/alert.cc, linked in) and its Content-Type check.
//
// Input: the request body; the same bytes, cut at the first NUL, are also
// the Content-Type header. Properties:
//  - ParseAlert never throws (an exception would cross the evhttp
//    callback) and never crashes;
//  - an accepted alert obeys every documented rule: the body is a JSON
//    object with only known, string fields, severity is one of three, each
//    field non-empty and within its limit, the team a valid topic; and the
//    alert, written back as JSON, is accepted again as the same alert;
//  - an error message is printable ASCII (it goes into a 400 body and the
//    log);
//  - IsJsonContentType accepts only "application/json" (any case), with
//    parameters whose charset, if any, is utf-8.
#include <strings.h>

#include <cstdint>
#include <exception>
#include <string>
#include <string_view>

#include "app.h"
#include "evsse/wire.h"
#include "fuzz_check.h"

namespace {

bool SameAlert(const alerts::Alert& a, const alerts::Alert& b) {
  return a.severity == b.severity && a.title == b.title && a.body == b.body &&
         a.team == b.team && a.dedup_key == b.dedup_key;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* bytes, size_t size) {
  const std::string_view body(reinterpret_cast<const char*>(bytes), size);
  alerts::AlertOptions limits;
  // Small limits, so that the length checks are reached by short inputs.
  limits.max_title_length = 1 + size % 32;
  limits.max_body_length = 1 + size % 64;
  limits.max_team_length = 1 + size % 16;
  limits.max_dedup_key_length = 1 + size % 24;

  evsse::Result<alerts::Alert> alert = evsse::InvalidArgumentError("unset");
  try {
    alert = alerts::ParseAlert(body, limits);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "ParseAlert threw: %s\n", e.what());
    EVSSE_FUZZ_CHECK(!"ParseAlert threw");
  }
  if (!alert.ok()) {
    EVSSE_FUZZ_CHECK(!alert.status().message().empty());
    EVSSE_FUZZ_CHECK(evsse::fuzz::IsPrintableAscii(alert.status().message()));
  } else {
    const alerts::Alert& a = *alert;
    EVSSE_FUZZ_CHECK(a.severity == "info" || a.severity == "warning" ||
                     a.severity == "critical");
    EVSSE_FUZZ_CHECK(!a.title.empty() &&
                     a.title.size() <= limits.max_title_length);
    EVSSE_FUZZ_CHECK(!a.body.empty() &&
                     a.body.size() <= limits.max_body_length);
    EVSSE_FUZZ_CHECK(a.dedup_key.size() <= limits.max_dedup_key_length);
    EVSSE_FUZZ_CHECK(alerts::ValidateTeam(a.team, limits.max_team_length).ok());
    for (const std::string* s : {&a.title, &a.body, &a.dedup_key}) {
      EVSSE_FUZZ_CHECK(evsse::IsValidUtf8(*s));
    }
    nlohmann::json j = nlohmann::json::parse(body);
    EVSSE_FUZZ_CHECK(j.is_object() &&
                     j.size() == (a.dedup_key.empty() ? 4 : 5));
    for (auto& [key, value] : j.items()) EVSSE_FUZZ_CHECK(value.is_string());

    // The alert written back (as the server stores it, less "ts").
    alerts::Json data = alerts::AlertData(a, "ts");
    data.erase("ts");
    evsse::Result<alerts::Alert> again =
        alerts::ParseAlert(data.dump(), limits);
    EVSSE_FUZZ_CHECK(again.ok() && SameAlert(*again, a));
  }

  const std::string header(body.substr(0, body.find('\0')));
  if (alerts::IsJsonContentType(header.c_str())) {
    std::string_view type = header;
    type = type.substr(0, type.find(';'));
    while (!type.empty() && (type.front() == ' ' || type.front() == '\t'))
      type.remove_prefix(1);
    while (!type.empty() && (type.back() == ' ' || type.back() == '\t'))
      type.remove_suffix(1);
    EVSSE_FUZZ_CHECK(type.size() == 16 &&
                     strncasecmp(type.data(), "application/json", 16) == 0);
  }
  EVSSE_FUZZ_CHECK(!alerts::IsJsonContentType(nullptr));
  return 0;
}
