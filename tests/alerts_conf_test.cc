// The alert server's directives (examples/alerts/config.cc): an application's
// own rows registered through evsse::conf::Directives. Their names, ranges,
// defaults and messages are the ones the alert server had when they were
// rows of the library's table; examples/alerts/README.md documents each with
// its default, and conf/alerts*.conf use them.
#include "config.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <sstream>
#include <string>

#include "conf_load.h"

namespace alerts {
namespace {

using evsse::conf::EndpointKind;
using std::chrono::milliseconds;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;

using evsse::testing::ReadSource;

std::string Error(const std::string& text) {
  return evsse::testing::LoadError(LoadConfigString(text, "main.conf"), text);
}

Config Load(const std::string& text) {
  return evsse::testing::LoadValue(LoadConfigString(text, "main.conf"));
}

void ExpectSame(const AlertOptions& a, const AlertOptions& b) {
  EXPECT_EQ(a.publish_token, b.publish_token);
  EXPECT_EQ(a.subscriber_auth, b.subscriber_auth);
  EXPECT_EQ(a.subscriber_tokens, b.subscriber_tokens);
  EXPECT_EQ(a.max_alert_bytes, b.max_alert_bytes);
  EXPECT_EQ(a.max_title_length, b.max_title_length);
  EXPECT_EQ(a.max_body_length, b.max_body_length);
  EXPECT_EQ(a.max_team_length, b.max_team_length);
  EXPECT_EQ(a.max_dedup_key_length, b.max_dedup_key_length);
  EXPECT_EQ(a.dedup_window, b.dedup_window);
  EXPECT_EQ(a.max_dedup_keys, b.max_dedup_keys);
  EXPECT_EQ(a.recent_alerts, b.recent_alerts);
}

TEST(AlertsConf, EmptyInputIsTheDefaults) {
  Config c = Load("");
  ExpectSame(c.alerts, AlertOptions{});
  EXPECT_EQ(c.listen.port, 8080);  // the library's part, as without them
}

TEST(AlertsConf, EveryDirectiveRoundTripsIntoItsMember) {
  std::string text = ReadSource("tests/data/conf/alerts-everything.conf");
  Config c = Load(text);
  const AlertOptions& a = c.alerts;
  EXPECT_EQ(a.publish_token, "Pub-Token_1.2~3+4/5=");
  EXPECT_TRUE(a.subscriber_auth);
  EXPECT_EQ(a.subscriber_tokens.size(), 2u);
  EXPECT_THAT(a.subscriber_tokens.at("tokA"), ElementsAre("ops", "payments"));
  EXPECT_THAT(a.subscriber_tokens.at("tokB"), ElementsAre("*"));
  EXPECT_EQ(a.max_alert_bytes, 32u << 10);
  EXPECT_EQ(a.max_title_length, 50u);
  EXPECT_EQ(a.max_body_length, 500u);
  EXPECT_EQ(a.max_team_length, 40u);
  EXPECT_EQ(a.max_dedup_key_length, 60u);
  EXPECT_EQ(a.dedup_window, milliseconds(90000));
  EXPECT_EQ(a.max_dedup_keys, 1234u);
  EXPECT_EQ(a.recent_alerts, 25u);
  EXPECT_EQ(c.hub.max_topic_length, 100u);
  // The file uses every alert directive: a new one needs a line there.
  AlertOptions scratch;
  evsse::conf::Directives d = AlertDirectives(&scratch);
  for (const evsse::conf::AppDirective& row : d.rows())
    EXPECT_THAT(text, HasSubstr("\n  " + std::string(row.info.name) + " "))
        << row.info.name;
}

// The messages users see are the ones they saw when these were library rows.
TEST(AlertsConf, ErrorsKeepTheirMessages) {
  EXPECT_EQ(Error("server { subscriber_token onlytoken; }"),
            "main.conf:1: directive \"subscriber_token\": too few arguments "
            "(takes 2 to 65)");
  EXPECT_EQ(Error("server { subscriber_auth yes; }"),
            "main.conf:1: directive \"subscriber_auth\": invalid value \"yes\" "
            "(use on or off)");
  EXPECT_EQ(Error("server { subscriber_token tok ops \"bad team\"; }"),
            "main.conf:1: directive \"subscriber_token\": invalid team (use "
            "A-Z a-z 0-9 - _ .) \"bad team\"");
  EXPECT_EQ(Error("server { subscriber_token tok ops ops; }"),
            "main.conf:1: directive \"subscriber_token\": duplicate team "
            "\"ops\"");
  EXPECT_EQ(Error("server { subscriber_token t1 a; subscriber_token t1 b; }"),
            "main.conf:1: directive \"subscriber_token\": duplicate token (the "
            "same token is listed twice)");
  EXPECT_EQ(Error("server { subscriber_token \"\" a; }"),
            "main.conf:1: directive \"subscriber_token\": must not be empty "
            "(value hidden)");
  EXPECT_EQ(Error("server { max_alert_bytes 100; }"),
            "main.conf:1: directive \"max_alert_bytes\": value out of range "
            "\"100\" (256..16m)");
  EXPECT_EQ(
      Error("server { dedup_window 2d; }"),
      "main.conf:1: directive \"dedup_window\": value out of range \"2d\" "
      "(0..1d)");
  EXPECT_EQ(Error("publish_token abc;"),
            "main.conf:1: directive \"publish_token\": not allowed in the main "
            "context (allowed in: server)");
  EXPECT_EQ(Error("server { recent_alert 5; }"),
            "main.conf:1: directive \"recent_alert\": unknown directive (did "
            "you mean \"recent_alerts\"?)");
  EXPECT_EQ(Error("server { max_topic_length 32; }"),
            "main.conf:1: directive \"max_topic_length\": max_team_length 64 "
            "is above max_topic_length 32 (a team is a topic)");
  EXPECT_EQ(Error("server {\n max_team_length 100;\n max_topic_length 90;\n}"),
            "main.conf:2: directive \"max_team_length\": max_team_length 100 "
            "is above max_topic_length 90 (a team is a topic)");
  EXPECT_EQ(Error("server { subscriber_auth on; }"),
            "main.conf:1: directive \"subscriber_auth\": subscriber_auth on "
            "needs at least one subscriber_token");
}

TEST(AlertsConf, SecretsAreNeverQuoted) {
  std::string m = Error("server { publish_token \"s3cret token\"; }");
  EXPECT_EQ(m,
            "main.conf:1: directive \"publish_token\": invalid character in "
            "token (use A-Z a-z 0-9 - . _ ~ + / =) (value hidden)");
  m = Error("server { publish_token s3cret extra; }");
  EXPECT_THAT(m, Not(HasSubstr("s3cret")));
  m = Error("server { subscriber_token \"s3cret!\" ops; }");
  EXPECT_THAT(m, Not(HasSubstr("s3cret")));
  EXPECT_THAT(m, HasSubstr("(value hidden)"));
  EXPECT_EQ(Error("server { publish_token\n  s3cret extra; }"),
            "main.conf:1: directive \"publish_token\": missing \";\" before "
            "(value hidden)");
  EXPECT_EQ(Error("server {\n subscriber_token\n s3cret ops {}\n}"),
            "main.conf:2: directive \"subscriber_token\": missing \";\" "
            "before (value hidden)");
  // The teams are not secret.
  EXPECT_EQ(Error("server {\n subscriber_token s3cret\n ops {}\n}"),
            "main.conf:2: directive \"subscriber_token\": missing \";\" "
            "before \"ops\"");
}

// The library alone does not know the alert server's directives.
TEST(AlertsConf, TheLibraryAloneDoesNotKnowThem) {
  auto r = evsse::conf::LoadString("server { publish_token abc; }", "x.conf");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(),
            "x.conf:1: directive \"publish_token\": unknown directive");
  for (const evsse::conf::DirectiveInfo& d : evsse::conf::DirectiveTable()) {
    AlertOptions o;
    EXPECT_EQ(AlertDirectives(&o).Find(d.name), nullptr) << d.name;
  }
}

TEST(AlertsConf, ShippedConfsParse) {
  for (const char* name : {"conf/alerts.conf", "conf/alerts-redis.conf"}) {
    auto r = LoadConfigFile(std::string(EVSSE_SOURCE_DIR) + "/" + name);
    ASSERT_TRUE(r.ok()) << name << ": " << r.status().ToString();
    EXPECT_EQ(r->listen.host, "127.0.0.1") << name;
    EXPECT_FALSE(r->alerts.subscriber_auth) << name;
    EXPECT_TRUE(r->alerts.publish_token.empty()) << name;
    bool stream = false;
    for (const evsse::conf::Endpoint& e : r->endpoints)
      stream |=
          e.kind == EndpointKind::kSubscribe && e.path == "/alerts/stream";
    EXPECT_TRUE(stream) << name;
    EXPECT_EQ(r->redis.has_value(),
              std::string(name).find("redis") != std::string::npos)
        << name;
  }
}

// Every alert directive has a row in examples/alerts/README.md whose default
// is the code's: the default written there, set explicitly, changes nothing.
TEST(AlertsConf, ReadmeListsEveryDirectiveWithItsDefault) {
  std::map<std::string, std::string> readme =
      evsse::testing::DefaultCells(ReadSource("examples/alerts/README.md"));
  AlertOptions scratch;
  evsse::conf::Directives d = AlertDirectives(&scratch);
  for (const evsse::conf::AppDirective& row : d.rows()) {
    std::string name(row.info.name);
    auto it = readme.find(name);
    ASSERT_TRUE(it != readme.end())
        << name << " has no row \"| `" << name << "` | default | ... |\" in "
        << "examples/alerts/README.md";
    const std::string& cell = it->second;
    if (cell == "none") {  // a table that starts empty (subscriber_token)
      EXPECT_TRUE(row.info.repeatable) << name;
      continue;
    }
    std::string value;
    if (cell == "empty") {
      value = "\"\"";
    } else {
      ASSERT_TRUE(cell.size() > 2 && cell.front() == '`' && cell.back() == '`')
          << name << ": default cell " << cell;
      value = cell.substr(1, cell.size() - 2);
    }
    Config c = Load("server { " + name + " " + value + "; }");
    SCOPED_TRACE(name);
    ExpectSame(c.alerts, AlertOptions{});
  }
}

}  // namespace
}  // namespace alerts
