// The configuration language: tokenizer and parser (no I/O: files come from
// an in-memory reader), one test per kind of error with its exact message,
// every directive into its struct member, the defaults, and the shipped
// conf/ files against the directive table.
#include "evsse/conf.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fnmatch.h>

#include <cctype>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>

#include "conf_load.h"

namespace evsse::conf {
namespace {

using std::chrono::milliseconds;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;

// Files: an in-memory file system for includes.
struct Files {
  std::map<std::string, std::string> files;
  std::vector<std::string> reads;
  ParseOptions options() {
    ParseOptions o;
    o.read = [this](const std::string& path) -> Result<std::string> {
      reads.push_back(path);
      auto it = files.find(path);
      if (it == files.end())
        return Status(StatusCode::kNotFound, "No such file or directory");
      return it->second;
    };
    o.glob =
        [this](const std::string& pattern) -> Result<std::vector<std::string>> {
      std::vector<std::string> out;
      for (auto& [name, text] : files)
        if (fnmatch(pattern.c_str(), name.c_str(), FNM_PATHNAME) == 0)
          out.push_back(name);
      return out;
    };
    return o;
  }
};

// Error returns the message of a config that must fail.
std::string Error(const std::string& text, Files* files = nullptr) {
  Files none;
  Files& f = files ? *files : none;
  return evsse::testing::LoadError(LoadString(text, "main.conf", f.options()),
                                   text);
}

ServerConfig Load(const std::string& text, Files* files = nullptr) {
  Files none;
  Files& f = files ? *files : none;
  return evsse::testing::LoadValue(LoadString(text, "main.conf", f.options()));
}

using evsse::testing::DefaultCells;
using evsse::testing::ReadSource;

// --- Equality of the option structs, field by field -------------------------

void ExpectSame(const HubOptions& a, const HubOptions& b) {
  EXPECT_EQ(a.history_max_events, b.history_max_events);
  EXPECT_EQ(a.history_max_age, b.history_max_age);
  EXPECT_EQ(a.history_max_bytes, b.history_max_bytes);
  EXPECT_EQ(a.max_connections, b.max_connections);
  EXPECT_EQ(a.max_subscribers_per_topic, b.max_subscribers_per_topic);
  EXPECT_EQ(a.max_topics, b.max_topics);
  EXPECT_EQ(a.max_event_bytes, b.max_event_bytes);
  EXPECT_EQ(a.max_topic_length, b.max_topic_length);
  EXPECT_EQ(a.coalesce_window, b.coalesce_window);
  EXPECT_EQ(a.log_level, b.log_level);
}

void ExpectSame(const StreamOptions& a, const StreamOptions& b) {
  EXPECT_EQ(a.heartbeat, b.heartbeat);
  EXPECT_EQ(a.retry, b.retry);
  EXPECT_EQ(a.retry_jitter, b.retry_jitter);
  EXPECT_EQ(a.write_stall_timeout, b.write_stall_timeout);
  EXPECT_EQ(a.dead_peer_timeout, b.dead_peer_timeout);
  EXPECT_EQ(a.max_lifetime, b.max_lifetime);
  EXPECT_EQ(a.lifetime_jitter, b.lifetime_jitter);
  EXPECT_EQ(a.max_queued_bytes, b.max_queued_bytes);
  EXPECT_EQ(a.replay_batch_bytes, b.replay_batch_bytes);
  EXPECT_EQ(a.padding_bytes, b.padding_bytes);
  EXPECT_EQ(a.max_topics_per_connection, b.max_topics_per_connection);
  EXPECT_EQ(a.poll_enabled, b.poll_enabled);
  EXPECT_EQ(a.poll_timeout, b.poll_timeout);
  EXPECT_EQ(a.poll_max_events, b.poll_max_events);
  EXPECT_EQ(a.gap_event, b.gap_event);
  EXPECT_EQ(a.cors_origins, b.cors_origins);
  EXPECT_EQ(a.cors_credentials, b.cors_credentials);
  EXPECT_EQ(a.cors_max_age, b.cors_max_age);
}

void ExpectSame(const PublishOptions& a, const PublishOptions& b) {
  EXPECT_EQ(a.max_body_bytes, b.max_body_bytes);
  EXPECT_EQ(a.bearer_token, b.bearer_token);
  EXPECT_EQ(a.allow_unauthenticated, b.allow_unauthenticated);
}

void ExpectSame(const redis::RedisOptions& a, const redis::RedisOptions& b) {
  EXPECT_EQ(a.address, b.address);
  EXPECT_EQ(a.sentinel_master, b.sentinel_master);
  EXPECT_EQ(a.sentinels, b.sentinels);
  EXPECT_EQ(a.sentinel_password, b.sentinel_password);
  EXPECT_EQ(a.cluster_seeds, b.cluster_seeds);
  EXPECT_EQ(a.password, b.password);
  EXPECT_EQ(a.username, b.username);
  EXPECT_EQ(a.database, b.database);
  EXPECT_EQ(a.key_prefix, b.key_prefix);
  EXPECT_EQ(a.max_events, b.max_events);
  EXPECT_EQ(a.max_age, b.max_age);
  EXPECT_EQ(a.stream_ttl, b.stream_ttl);
  EXPECT_EQ(a.connect_timeout, b.connect_timeout);
  EXPECT_EQ(a.command_timeout, b.command_timeout);
  EXPECT_EQ(a.reconnect_min, b.reconnect_min);
  EXPECT_EQ(a.reconnect_max, b.reconnect_max);
  EXPECT_EQ(a.probe_interval, b.probe_interval);
  EXPECT_EQ(a.probe_timeout, b.probe_timeout);
  EXPECT_EQ(a.tcp_user_timeout, b.tcp_user_timeout);
  EXPECT_EQ(a.wait_replicas, b.wait_replicas);
  EXPECT_EQ(a.wait_timeout, b.wait_timeout);
}

// --- Tokenizer and parser ---------------------------------------------------

TEST(ConfParse, TreeWithBlocksQuotesEscapesAndComments) {
  auto tree = Parse(
      "# leading comment\n"
      "a 1 'two words' \"q\\\"\\\\\\n\\t\";  # trailing\n"
      "b{c x#y;}\n"
      "\"d\" ''; e\r\n"
      "  f;\n",
      "t.conf");
  ASSERT_TRUE(tree.ok()) << tree.status().ToString();
  ASSERT_EQ(tree->size(), 4u);
  const Node& a = (*tree)[0];
  EXPECT_EQ(a.name, "a");
  EXPECT_EQ(a.file, "t.conf");
  EXPECT_EQ(a.line, 2);
  ASSERT_EQ(a.args.size(), 3u);
  EXPECT_EQ(a.args[0].text, "1");
  EXPECT_FALSE(a.args[0].quoted);
  EXPECT_EQ(a.args[1].text, "two words");
  EXPECT_TRUE(a.args[1].quoted);
  EXPECT_EQ(a.args[2].text, "q\"\\\n\t");
  const Node& b = (*tree)[1];
  EXPECT_TRUE(b.block);
  ASSERT_EQ(b.children.size(), 1u);
  EXPECT_EQ(b.children[0].name, "c");
  EXPECT_EQ(b.children[0].args[0].text, "x#y");  // '#' inside a word
  EXPECT_EQ((*tree)[2].name, "d");
  EXPECT_EQ((*tree)[2].args[0].text, "");
  EXPECT_EQ((*tree)[3].name, "e");
  EXPECT_EQ((*tree)[3].args[0].text, "f");  // newlines do not end a directive
  EXPECT_EQ((*tree)[3].args[0].line, 5);
}

TEST(ConfParse, StringsMaySpanLinesAndLinesAreCounted) {
  auto tree = Parse("a \"x\ny\";\n\nb;", "t.conf");
  ASSERT_TRUE(tree.ok());
  EXPECT_EQ((*tree)[0].args[0].text, "x\ny");
  EXPECT_EQ((*tree)[1].line, 4);
}

TEST(ConfParse, EmptyInputIsTheDefaults) {
  ServerConfig c = Load("");
  ServerConfig d;
  EXPECT_EQ(c.listen.host, "127.0.0.1");
  EXPECT_EQ(c.listen.port, 8080);
  EXPECT_EQ(c.shutdown_timeout, d.shutdown_timeout);
  EXPECT_EQ(c.request_timeout, d.request_timeout);
  EXPECT_EQ(c.listen.ssl, d.listen.ssl);
  EXPECT_EQ(c.ssl_protocols, d.ssl_protocols);
  EXPECT_EQ(c.tls.certificate_file, d.tls.certificate_file);
  EXPECT_EQ(c.tls.key_file, d.tls.key_file);
  EXPECT_EQ(c.tls.min_version, d.tls.min_version);
  EXPECT_EQ(c.tls.max_version, d.tls.max_version);
  EXPECT_EQ(c.tls.ciphers, d.tls.ciphers);
  EXPECT_EQ(c.tls.curves, d.tls.curves);
  EXPECT_EQ(c.tls.client_ca_file, d.tls.client_ca_file);
  ExpectSame(c.hub, d.hub);
  EXPECT_TRUE(c.endpoints.empty());
  EXPECT_FALSE(c.redis.has_value());
}

// Blocks without directives hold exactly the structs' member defaults.
TEST(ConfParse, EmptyBlocksHoldTheMemberDefaults) {
  ServerConfig c = Load(
      "server { endpoint subscribe /s {} endpoint publish /p {}\n"
      "  endpoint poll /q {} endpoint metrics /m {} endpoint status /st {}\n"
      "  redis {} }");
  ASSERT_EQ(c.endpoints.size(), 5u);
  ExpectSame(c.endpoints[0].stream, StreamOptions{});
  ExpectSame(c.endpoints[1].publish, PublishOptions{});
  ExpectSame(c.endpoints[2].stream, StreamOptions{});
  EXPECT_EQ(c.endpoints[3].kind, EndpointKind::kMetrics);
  EXPECT_EQ(c.endpoints[4].kind, EndpointKind::kStatus);
  EXPECT_EQ(c.endpoints[1].where, "main.conf:1");
  ASSERT_TRUE(c.redis.has_value());
  ExpectSame(*c.redis, redis::RedisOptions{});
}

// --- Values ------------------------------------------------------------------

TEST(ConfValues, Sizes) {
  EXPECT_EQ(*ParseSize("0"), 0u);
  EXPECT_EQ(*ParseSize("1024"), 1024u);
  EXPECT_EQ(*ParseSize("64k"), 65536u);
  EXPECT_EQ(*ParseSize("64K"), 65536u);
  EXPECT_EQ(*ParseSize("1m"), 1u << 20);
  EXPECT_EQ(*ParseSize("2g"), 2ull << 30);
  for (const char* bad : {"", "k", "1.5m", "-1", "1kb", "1 k", "0x10"})
    EXPECT_FALSE(ParseSize(bad).ok()) << bad;
  EXPECT_EQ(ParseSize("99999999999999999999").status().code(),
            StatusCode::kOutOfRange);
  EXPECT_EQ(ParseSize("99999999999g").status().code(), StatusCode::kOutOfRange);
  EXPECT_EQ(FormatSize(65536), "64k");
  EXPECT_EQ(FormatSize(1 << 20), "1m");
  EXPECT_EQ(FormatSize(1000), "1000");
  EXPECT_EQ(FormatSize(0), "0");
}

TEST(ConfValues, Durations) {
  EXPECT_EQ(*ParseDuration("0"), milliseconds(0));
  EXPECT_EQ(*ParseDuration("500ms"), milliseconds(500));
  EXPECT_EQ(*ParseDuration("15s"), milliseconds(15000));
  EXPECT_EQ(*ParseDuration("2m"), milliseconds(120000));
  EXPECT_EQ(*ParseDuration("1h"), milliseconds(3600000));
  EXPECT_EQ(*ParseDuration("1d"), milliseconds(86400000));
  EXPECT_EQ(*ParseDuration("0s"), milliseconds(0));
  for (const char* bad : {"", "15", "s", "1.5s", "15 s", "15S", "1w", "-1s"})
    EXPECT_FALSE(ParseDuration(bad).ok()) << bad;
  EXPECT_EQ(ParseDuration("15").status().message(),
            "invalid duration \"15\" (add a unit: ms, s, m, h, d)");
  EXPECT_EQ(FormatDuration(milliseconds(15000)), "15s");
  EXPECT_EQ(FormatDuration(milliseconds(600000)), "10m");
  EXPECT_EQ(FormatDuration(milliseconds(1500)), "1500ms");
}

TEST(ConfValues, CountsBoolsAddresses) {
  EXPECT_EQ(*ParseCount("42"), 42u);
  EXPECT_FALSE(ParseCount("4 2").ok());
  EXPECT_FALSE(ParseCount("+1").ok());
  EXPECT_TRUE(*ParseBool("on"));
  EXPECT_FALSE(*ParseBool("off"));
  EXPECT_FALSE(ParseBool("yes").ok());
  auto hp = ParseHostPort("[::1]:9000");
  ASSERT_TRUE(hp.ok());
  EXPECT_EQ(hp->host, "::1");
  EXPECT_EQ(hp->port, 9000);
  EXPECT_EQ(ParseHostPort("localhost:0")->port, 0);
  for (const char* bad : {"8080", ":80", "host:", "host:65536", "::1:80",
                          "a b:80", "[::1]80", "h:8o"})
    EXPECT_FALSE(ParseHostPort(bad).ok()) << bad;
  EXPECT_TRUE(ValidateRedisAddress("127.0.0.1:6379").ok());
  EXPECT_TRUE(ValidateRedisAddress("unix:/run/redis.sock").ok());
  EXPECT_FALSE(ValidateRedisAddress("unix:relative.sock").ok());
  EXPECT_FALSE(ValidateRedisAddress("127.0.0.1:0").ok());
  // One grammar with the Redis link: what the link refuses, --check refuses.
  for (const char* bad : {"host/x:6379", "::1:6379", "unix:"})
    EXPECT_FALSE(ValidateRedisAddress(bad).ok()) << bad;
  EXPECT_FALSE(ValidateRedisAddress("unix:/" + std::string(200, 'x')).ok());
  EXPECT_TRUE(ValidateRedisAddress("[::1]:6379").ok());
  EXPECT_EQ(Quote("a\"b\\c\n"), "\"a\\\"b\\\\c\\x0a\"");
  EXPECT_EQ(Quote(std::string(70, 'x')), "\"" + std::string(64, 'x') + "...\"");
}

// --- Errors: one test per kind, exact messages
// --------------------------------

TEST(ConfErrors, UnknownDirective) {
  EXPECT_EQ(Error("server {\n  endpoint subscribe /e {\n    hearbeat 15s;\n"
                  "  }\n}\n"),
            "main.conf:3: directive \"hearbeat\": unknown directive (did you "
            "mean \"heartbeat\"?)");
  EXPECT_EQ(Error("frobnicate on;"),
            "main.conf:1: directive \"frobnicate\": unknown directive");
}

TEST(ConfParse, KafkaBlock) {
  ServerConfig c = Load(
      "server { kafka {\n"
      "  brokers 10.0.0.1:9092 kafka-2.example:9093;\n"
      "  event_header x-type; client_id node-1;\n"
      "  publish_timeout 3s; fetch_timeout 2s; metadata_refresh 1s;\n"
      "  librdkafka security.protocol sasl_ssl;\n"
      "  librdkafka sasl.mechanisms PLAIN;\n"
      "} }");
  ASSERT_TRUE(c.kafka.has_value());
  EXPECT_FALSE(c.redis.has_value());
  EXPECT_THAT(c.kafka->brokers,
              ElementsAre("10.0.0.1:9092", "kafka-2.example:9093"));
  EXPECT_EQ(c.kafka->event_header, "x-type");
  EXPECT_EQ(c.kafka->client_id, "node-1");
  EXPECT_EQ(c.kafka->publish_timeout, milliseconds(3000));
  EXPECT_EQ(c.kafka->fetch_timeout, milliseconds(2000));
  EXPECT_EQ(c.kafka->metadata_refresh, milliseconds(1000));
  ASSERT_EQ(c.kafka->settings.size(), 2u);
  EXPECT_EQ(c.kafka->settings[1],
            (std::pair<std::string, std::string>{"sasl.mechanisms", "PLAIN"}));
}

TEST(ConfErrors, KafkaBlock) {
  EXPECT_EQ(Error("server {\n kafka { event_header t; }\n}"),
            "main.conf:2: directive \"kafka\": the kafka block needs brokers "
            "HOST:PORT...");
  EXPECT_THAT(Error("server { kafka { brokers localhost; } }"),
              HasSubstr("invalid broker (HOST:PORT)"));
  EXPECT_THAT(Error("server { kafka { brokers a:1; librdkafka acks; } }"),
              HasSubstr("main.conf:1: directive \"librdkafka\""));
  std::string m = Error(
      "server { kafka { brokers a:1; librdkafka sasl.password s3cret;\n"
      "  librdkafka sasl.password s3cret; } }");
  EXPECT_THAT(m, HasSubstr("main.conf:2"));
  EXPECT_THAT(m, HasSubstr("duplicate setting"));
  EXPECT_THAT(m, Not(HasSubstr("s3cret")));
  EXPECT_THAT(Error("server { kafka { brokers a:1; } kafka { brokers a:1; } }"),
              HasSubstr("kafka"));
}

TEST(ConfErrors, DirectiveInTheWrongBlock) {
  EXPECT_EQ(Error("listen 127.0.0.1:80;"),
            "main.conf:1: directive \"listen\": not allowed in the main "
            "context (allowed in: server)");
  EXPECT_EQ(Error("server {\n heartbeat 15s;\n}"),
            "main.conf:2: directive \"heartbeat\": not allowed in the server "
            "block (allowed in: endpoint)");
  EXPECT_EQ(Error("server { redis { heartbeat 1s; } }"),
            "main.conf:1: directive \"heartbeat\": not allowed in the redis "
            "block (allowed in: endpoint)");
  EXPECT_EQ(Error("server { server { } }"),
            "main.conf:1: directive \"server\": not allowed in the server "
            "block (allowed in: main)");
}

TEST(ConfErrors, DirectiveInTheWrongKindOfEndpoint) {
  EXPECT_EQ(Error("server {\n endpoint publish /p {\n  heartbeat 1s;\n }\n}"),
            "main.conf:3: directive \"heartbeat\": not allowed in a "
            "\"publish\" endpoint (allowed in: subscribe, poll)");
  EXPECT_EQ(Error("server { endpoint metrics /m { bearer_token x; } }"),
            "main.conf:1: directive \"bearer_token\": not allowed in a "
            "\"metrics\" endpoint (allowed in: publish)");
}

TEST(ConfErrors, WrongArity) {
  EXPECT_EQ(Error("shutdown_timeout;"),
            "main.conf:1: directive \"shutdown_timeout\": missing argument "
            "(takes 1)");
  EXPECT_EQ(Error("shutdown_timeout 1s 2s;"),
            "main.conf:1: directive \"shutdown_timeout\": unexpected argument "
            "\"2s\" (takes 1)");
  EXPECT_EQ(Error("server { endpoint subscribe { } }"),
            "main.conf:1: directive \"endpoint\": too few arguments (takes 2)");
  EXPECT_EQ(Error("include;"),
            "main.conf:1: directive \"include\": missing argument (takes 1)");
  EXPECT_EQ(Error("server;"),
            "main.conf:1: directive \"server\": needs a block \"{\"");
  EXPECT_EQ(Error("log_level info { }"),
            "main.conf:1: directive \"log_level\": takes no block, unexpected "
            "\"{\"");
}

TEST(ConfErrors, BadNumber) {
  EXPECT_EQ(Error("server { max_connections ten; }"),
            "main.conf:1: directive \"max_connections\": invalid number "
            "\"ten\"");
  EXPECT_EQ(Error("server { max_connections 99999999999999999999999; }"),
            "main.conf:1: directive \"max_connections\": number too large "
            "\"99999999999999999999999\"");
}

TEST(ConfErrors, BadSize) {
  EXPECT_EQ(Error("server { max_event_bytes 1q; }"),
            "main.conf:1: directive \"max_event_bytes\": invalid size \"1q\" "
            "(use bytes or k, m, g: 64k)");
}

TEST(ConfErrors, BadDuration) {
  EXPECT_EQ(Error("shutdown_timeout 5;"),
            "main.conf:1: directive \"shutdown_timeout\": invalid duration "
            "\"5\" (add a unit: ms, s, m, h, d)");
  EXPECT_EQ(Error("shutdown_timeout 5x;"),
            "main.conf:1: directive \"shutdown_timeout\": invalid duration "
            "\"5x\" (use ms, s, m, h, d: 500ms, 15s)");
}

TEST(ConfErrors, BadBoolEnumAddressAndString) {
  EXPECT_EQ(Error("server { endpoint subscribe /e { poll yes; } }"),
            "main.conf:1: directive \"poll\": invalid value \"yes\" "
            "(use on or off)");
  EXPECT_EQ(Error("log_level verbose;"),
            "main.conf:1: directive \"log_level\": invalid value \"verbose\" "
            "(one of: debug, info, warning, error)");
  EXPECT_EQ(Error("server { listen 8080; }"),
            "main.conf:1: directive \"listen\": invalid address \"8080\" "
            "(expected HOST:PORT)");
  EXPECT_EQ(Error("server { redis { address unix:redis.sock; } }"),
            "main.conf:1: directive \"address\": redis address "
            "\"unix:redis.sock\": unix: needs an absolute path");
  EXPECT_EQ(Error("server { endpoint subscribe /e { gap_event \"\"; } }"),
            "main.conf:1: directive \"gap_event\": must not be empty \"\"");
  EXPECT_EQ(Error("server { endpoint subscribe /e { gap_event \"a\\nb\"; } }"),
            "main.conf:1: directive \"gap_event\": invalid value (no CR, LF "
            "or NUL) \"a\\x0ab\"");
  const std::string kExpected =
      " (expected scheme://host[:port] in lower case, no path and no trailing "
      "slash, or \"*\")";
  EXPECT_EQ(
      Error("server { endpoint subscribe /e {\n cors_origins http://a "
            "\"b c\"; } }"),
      "main.conf:2: directive \"cors_origins\": invalid origin: no scheme" +
          kExpected + " \"b c\"");
  EXPECT_EQ(Error("server { endpoint subscribe /e { cors_origins "
                  "https://app.example.com/; } }"),
            "main.conf:1: directive \"cors_origins\": invalid origin: trailing "
            "slash" +
                kExpected + " \"https://app.example.com/\"");
  EXPECT_EQ(
      Error("server { endpoint subscribe /e { cors_origins "
            "https://App.example.com; } }"),
      "main.conf:1: directive \"cors_origins\": invalid origin: not lower "
      "case" +
          kExpected + " \"https://App.example.com\"");
  EXPECT_EQ(Error("server { endpoint subscribe /e { cors_origins "
                  "https://a.example/app; } }"),
            "main.conf:1: directive \"cors_origins\": invalid origin: has a "
            "path, query or fragment" +
                kExpected + " \"https://a.example/app\"");
  EXPECT_EQ(Error("server { endpoint subscribe /e { cors_origins "
                  "http://a:0x; } }"),
            "main.conf:1: directive \"cors_origins\": invalid origin: invalid "
            "port" +
                kExpected + " \"http://a:0x\"");
  EXPECT_EQ(Error("server { endpoint subscribe /e { cors_origins http://a "
                  "http://a; } }"),
            "main.conf:1: directive \"cors_origins\": duplicate value "
            "\"http://a\"");
  EXPECT_EQ(Error("server { endpoint subscribe /e { dead_peer_timeout 2h; } }"),
            "main.conf:1: directive \"dead_peer_timeout\": value out of range "
            "\"2h\" (0..1h)");
  EXPECT_EQ(Error("server { redis { key_prefix \"{x}\"; } }"),
            "main.conf:1: directive \"key_prefix\": invalid key prefix (no "
            "braces or spaces) \"{x}\"");
}

TEST(ConfErrors, OutOfRange) {
  EXPECT_EQ(Error("server { endpoint subscribe /e {\n"
                  "max_topics_per_connection 65; } }"),
            "main.conf:2: directive \"max_topics_per_connection\": value out "
            "of range \"65\" (1..64)");
  EXPECT_EQ(Error("server { endpoint subscribe /e { max_queued_bytes 512; } }"),
            "main.conf:1: directive \"max_queued_bytes\": value out of range "
            "\"512\" (1k..1g)");
  EXPECT_EQ(Error("shutdown_timeout 2h;"),
            "main.conf:1: directive \"shutdown_timeout\": value out of range "
            "\"2h\" (0..1h)");
  EXPECT_EQ(Error("server { max_connections 0; }"),
            "main.conf:1: directive \"max_connections\": value out of range "
            "\"0\" (1..10000000)");
  EXPECT_EQ(Error("server { gap_event x; }"),
            "main.conf:1: directive \"gap_event\": not allowed in the server "
            "block (allowed in: endpoint)");
}

TEST(ConfErrors, Duplicates) {
  EXPECT_EQ(Error("server {\n endpoint subscribe /e {\n  heartbeat 1s;\n"
                  "  heartbeat 2s;\n }\n}"),
            "main.conf:4: directive \"heartbeat\": is duplicate, first set at "
            "main.conf:3");
  EXPECT_EQ(Error("server {}\nserver {}"),
            "main.conf:2: directive \"server\": is duplicate, first set at "
            "main.conf:1");
  EXPECT_EQ(Error("server {\n endpoint subscribe /e {}\n"
                  " endpoint poll /e {}\n}"),
            "main.conf:3: directive \"endpoint\": duplicate path \"/e\", first "
            "at main.conf:2");
  // The same directive in two endpoints is not a duplicate.
  ServerConfig c = Load(
      "server { endpoint subscribe /a { heartbeat 1s; }"
      " endpoint subscribe /b { heartbeat 2s; } }");
  ASSERT_EQ(c.endpoints.size(), 2u);
  EXPECT_EQ(c.endpoints[1].stream.heartbeat, milliseconds(2000));
}

TEST(ConfErrors, UnterminatedString) {
  EXPECT_EQ(Error("server {\n endpoint subscribe /e {\n  gap_event \"oops;\n"
                  " }\n}\n"),
            "main.conf:3: directive \"gap_event\": unterminated string "
            "\"\\\"oops;\\x0a }\\x0a}\\x0a\"");
  EXPECT_EQ(Error("'abc"), "main.conf:1: unterminated string \"'abc\"");
}

TEST(ConfErrors, UnterminatedBlock) {
  EXPECT_EQ(Error("server {\n  endpoint subscribe /e {\n}\n"),
            "main.conf:1: directive \"server\": unterminated block, missing "
            "\"}\"");
}

TEST(ConfErrors, MissingSemicolon) {
  EXPECT_EQ(Error("server { listen 127.0.0.1:80 }"),
            "main.conf:1: directive \"listen\": missing \";\" before \"}\"");
  EXPECT_EQ(Error("shutdown_timeout 1s"),
            "main.conf:1: directive \"shutdown_timeout\": missing \";\" before "
            "end of file");
  // Newlines do not end a directive: the next line's words became extra
  // arguments, which is reported as the missing ";".
  EXPECT_EQ(Error("shutdown_timeout 1s\nlog_level info;"),
            "main.conf:1: directive \"shutdown_timeout\": missing \";\" before "
            "\"log_level\"");
  EXPECT_EQ(Error("server {\n listen 127.0.0.1:80\n endpoint subscribe /e {\n"
                  " }\n}"),
            "main.conf:2: directive \"listen\": missing \";\" before "
            "\"endpoint\"");
}

TEST(ConfErrors, UnexpectedTokensAndBadBytes) {
  EXPECT_EQ(Error("}"), "main.conf:1: unexpected \"}\"");
  EXPECT_EQ(Error("server { } ;"), "main.conf:1: unexpected \";\"");
  EXPECT_EQ(Error("\n{ }"), "main.conf:2: unexpected \"{\"");
  EXPECT_EQ(Error("log_level in\"fo\";"),
            "main.conf:1: directive \"log_level\": unexpected quote in "
            "\"in\\\"\"");
  EXPECT_EQ(Error("log_level \"info\"x;"),
            "main.conf:1: directive \"log_level\": unexpected character after "
            "string \"x\"");
  EXPECT_EQ(Error("log_level \"in\\qfo\";"),
            "main.conf:1: directive \"log_level\": invalid escape \"\\\\q\"");
  EXPECT_EQ(Error(std::string("log_level in\0fo;", 16)),
            "main.conf:1: directive \"log_level\": unexpected control "
            "character \"\\x00\"");
}

TEST(ConfErrors, MissingFile) {
  Files f;
  EXPECT_EQ(Error("server {\n  include missing.conf;\n}", &f),
            "main.conf:2: directive \"include\": cannot read \"missing.conf\": "
            "No such file or directory");
  auto r = LoadFile("/nonexistent/evsse-test.conf");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kNotFound);
  EXPECT_EQ(r.status().message(),
            "cannot read \"/nonexistent/evsse-test.conf\": No such file or "
            "directory");
}

// Found by tests/fuzz/conf_fuzz: the path starts every message about the
// file, so a control byte in it would reach logs raw.
TEST(ConfErrors, IncludePathWithAControlCharacter) {
  Files f;
  f.files["a\tb.conf"] = "foo;";
  EXPECT_EQ(Error("include \"a\\tb.conf\";", &f),
            "main.conf:1: directive \"include\": control character in path "
            "\"a\\x09b.conf\"");
  EXPECT_EQ(Error("include 'x\\n';", &f),
            "main.conf:1: directive \"include\": control character in path "
            "\"x\\x0a\"");
}

TEST(ConfErrors, IncludeCycle) {
  Files f;
  f.files["conf/a.conf"] = "include b.conf;";
  f.files["conf/b.conf"] = "\ninclude ../conf/a.conf;";
  auto r = LoadFile("conf/a.conf", f.options());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(),
            "conf/b.conf:2: directive \"include\": include cycle "
            "\"../conf/a.conf\" (conf/a.conf -> conf/b.conf -> conf/a.conf)");
  f.files["self.conf"] = "include self.conf;";
  EXPECT_THAT(LoadFile("self.conf", f.options()).status().message(),
              HasSubstr("include cycle \"self.conf\""));
}

TEST(ConfErrors, SecretsAreNeverQuoted) {
  std::string m = Error(
      "server { endpoint publish /p { bearer_token \"s3cret token\"; } }");
  EXPECT_EQ(m,
            "main.conf:1: directive \"bearer_token\": invalid character in "
            "token (use A-Z a-z 0-9 - . _ ~ + / =) (value hidden)");
  m = Error("server { endpoint publish /p { bearer_token s3cret extra; } }");
  EXPECT_THAT(m, Not(HasSubstr("s3cret")));
  m = Error("server { redis { password \"s3cret\" x; } }");
  EXPECT_THAT(m, Not(HasSubstr("s3cret")));
  EXPECT_THAT(m, HasSubstr("(value hidden)"));
  // Found by tests/fuzz/conf_fuzz: a secret on the line after its directive
  // was quoted by the missing-";" message.
  EXPECT_EQ(Error("server { endpoint publish /p { bearer_token\n  s3cret "
                  "extra; } }"),
            "main.conf:1: directive \"bearer_token\": missing \";\" before "
            "(value hidden)");
  // (The alert server's publish_token and subscriber_token:
  // tests/alerts_conf_test.cc.)
}

TEST(ConfErrors, BadEndpointKindAndPath) {
  EXPECT_EQ(Error("server { endpoint stream /e { } }"),
            "main.conf:1: directive \"endpoint\": invalid endpoint kind "
            "\"stream\" (one of: subscribe, publish, poll, metrics, status)");
  EXPECT_EQ(Error("server { endpoint subscribe events { } }"),
            "main.conf:1: directive \"endpoint\": invalid path \"events\" (an "
            "absolute path without a query: /events)");
  EXPECT_EQ(Error("server { endpoint subscribe \"/e?x=1\" { } }"),
            "main.conf:1: directive \"endpoint\": invalid path \"/e?x=1\" (an "
            "absolute path without a query: /events)");
}

TEST(ConfValues, ClusterSeeds) {
  auto r = LoadString(
      "server { redis { cluster 127.0.0.1:7000 [::1]:7001 node3:7002; "
      "wait_replicas 1; } }",
      "main.conf");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_TRUE(r->redis.has_value());
  EXPECT_THAT(r->redis->cluster_seeds,
              ElementsAre("127.0.0.1:7000", "[::1]:7001", "node3:7002"));
  EXPECT_EQ(r->redis->wait_replicas, 1);
}

TEST(ConfErrors, RulesBetweenDirectives) {
  EXPECT_EQ(Error("server { endpoint subscribe /e {\n cors_origins \"*\";\n"
                  " cors_credentials on; } }"),
            "main.conf:2: directive \"cors_origins\": origin \"*\" cannot be "
            "combined with cors_credentials on");
  EXPECT_EQ(Error("server { endpoint poll /p { poll off; } }"),
            "main.conf:1: directive \"poll\": cannot be off in a poll endpoint "
            "\"off\"");
  EXPECT_EQ(Error("server { redis { reconnect_min 10s; } }"),
            "main.conf:1: directive \"reconnect_min\": reconnect_min 10s is "
            "above reconnect_max 5s");
  EXPECT_EQ(Error("server { redis { wait_replicas 1; wait_timeout 5s; } }"),
            "main.conf:1: directive \"wait_timeout\": wait_timeout 5s must be "
            "below command_timeout and probe_timeout (a WAIT holds the "
            "command connection)");
  EXPECT_EQ(Error("server { redis { sentinel mymaster; } }"),
            "main.conf:1: directive \"sentinel\": too few arguments (takes 2 "
            "to 17)");
  EXPECT_EQ(Error("server { redis { sentinel mymaster unix:/s.sock; } }"),
            "main.conf:1: directive \"sentinel\": sentinel \"unix:/s.sock\": "
            "sentinels are HOST:PORT");
  EXPECT_EQ(Error("server { redis { sentinel m 127.0.0.1:1 127.0.0.1:1; } }"),
            "main.conf:1: directive \"sentinel\": duplicate sentinel "
            "\"127.0.0.1:1\"");
  // Redis Cluster: seeds are HOST:PORT, and a cluster is neither a single
  // address, nor found through sentinels, nor a database other than 0.
  EXPECT_EQ(Error("server { redis { cluster; } }"),
            "main.conf:1: directive \"cluster\": missing argument (takes 1 "
            "to 64)");
  EXPECT_EQ(Error("server { redis { cluster unix:/s.sock; } }"),
            "main.conf:1: directive \"cluster\": invalid seed (HOST:PORT, not "
            "unix:) \"unix:/s.sock\"");
  EXPECT_EQ(Error("server { redis { cluster 127.0.0.1:1 127.0.0.1:1; } }"),
            "main.conf:1: directive \"cluster\": duplicate value "
            "\"127.0.0.1:1\"");
  EXPECT_EQ(Error("server { redis {\n address 127.0.0.1:1;\n"
                  " cluster 127.0.0.1:7000 127.0.0.1:7001;\n} }"),
            "main.conf:3: directive \"cluster\": cannot be combined with "
            "\"address\" (main.conf:2): a cluster's primaries come from its "
            "slot map");
  EXPECT_EQ(Error("server { redis {\n cluster 127.0.0.1:7000;\n"
                  " sentinel m 127.0.0.1:26379;\n} }"),
            "main.conf:2: directive \"cluster\": cannot be combined with "
            "\"sentinel\" (main.conf:3): a cluster's primaries come from its "
            "slot map");
  EXPECT_EQ(Error("server { redis { cluster 127.0.0.1:7000; database 1; } }"),
            "main.conf:1: directive \"cluster\": cannot be combined with "
            "\"database\" (main.conf:1): a Redis Cluster has only database 0");
  // Rules the Hub checks are --check's too (one validator, options.h).
  EXPECT_EQ(Error("server { history_max_bytes 4k; max_event_bytes 8k; }"),
            "main.conf:1: directive \"server\": history_max_bytes 4096 is "
            "below max_event_bytes 8192: it must be 0 (no budget) or hold at "
            "least one event");
}

// --- Includes
// ------------------------------------------------------------------

TEST(ConfInclude, RelativeToTheIncludingFileInAnyBlockWithGlobs) {
  Files f;
  f.files["etc/evsse/main.conf"] =
      "include base.conf;\n"
      "server {\n"
      "  include endpoints/*.conf;\n"
      "}\n";
  f.files["etc/evsse/base.conf"] = "log_level debug;\n";
  f.files["etc/evsse/endpoints/a.conf"] =
      "endpoint subscribe /a { include ../stream.conf; }\n";
  f.files["etc/evsse/endpoints/b.conf"] = "endpoint status /b { }\n";
  f.files["etc/evsse/stream.conf"] = "heartbeat 5s;\n";
  auto r = LoadFile("etc/evsse/main.conf", f.options());
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->hub.log_level, LogLevel::kDebug);
  ASSERT_EQ(r->endpoints.size(), 2u);
  EXPECT_EQ(r->endpoints[0].path, "/a");
  EXPECT_EQ(r->endpoints[0].stream.heartbeat, milliseconds(5000));
  EXPECT_EQ(r->endpoints[0].where, "etc/evsse/endpoints/a.conf:1");
  EXPECT_EQ(r->endpoints[1].path, "/b");
  // A glob matching nothing includes nothing (as in nginx).
  f.files["x.conf"] = "include none/*.conf;";
  EXPECT_TRUE(LoadFile("x.conf", f.options()).ok());
}

TEST(ConfInclude, ErrorsNameTheIncludedFileAndLine) {
  Files f;
  f.files["inc.conf"] = "\n\nheartbeat 1s;\n";
  EXPECT_EQ(Error("server {\n include inc.conf;\n}", &f),
            "inc.conf:3: directive \"heartbeat\": not allowed in the server "
            "block (allowed in: endpoint)");
  // An included file holds whole directives: a stray "}" is an error there.
  f.files["brace.conf"] = "}";
  EXPECT_EQ(Error("server { include brace.conf; }", &f),
            "brace.conf:1: unexpected \"}\"");
  // Duplicates across files say where the first one was.
  f.files["t.conf"] = "shutdown_timeout 1s;";
  EXPECT_EQ(Error("shutdown_timeout 2s;\ninclude t.conf;", &f),
            "t.conf:1: directive \"shutdown_timeout\": is duplicate, first set "
            "at main.conf:1");
}

TEST(ConfInclude, DepthIsBounded) {
  Files f;
  for (int i = 0; i < 20; ++i)
    f.files["f" + std::to_string(i) + ".conf"] =
        "include f" + std::to_string(i + 1) + ".conf;";
  auto r = LoadFile("f0.conf", f.options());
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.status().message(), HasSubstr("includes nested too deeply"));
}

// --- Every directive into its member -----------------------------------------

TEST(ConfDirectives, EveryDirectiveRoundTripsIntoItsMember) {
  Files f;
  f.files["extra.conf"] = "";
  std::string everything = ReadSource("tests/data/conf/everything.conf");
  ServerConfig c = Load(everything + "include extra.conf;\n", &f);
  EXPECT_EQ(c.hub.log_level, LogLevel::kWarning);
  EXPECT_EQ(c.shutdown_timeout, milliseconds(9000));
  EXPECT_EQ(c.listen.host, "::1");
  EXPECT_EQ(c.listen.port, 9090);
  EXPECT_TRUE(c.listen.ssl);
  EXPECT_EQ(c.tls.certificate_file, "/etc/evsse/chain.pem");
  EXPECT_EQ(c.tls.key_file, "keys/server.key");  // main.conf has no directory
  EXPECT_THAT(c.ssl_protocols, ElementsAre("TLSv1.3"));
  EXPECT_EQ(c.tls.min_version, TlsVersion::kTls13);
  EXPECT_EQ(c.tls.max_version, TlsVersion::kTls13);
  EXPECT_EQ(c.tls.ciphers, "ECDHE-RSA-AES128-GCM-SHA256");
  EXPECT_EQ(c.tls.curves, "X25519");
  EXPECT_EQ(c.tls.client_ca_file, "/etc/evsse/clients.pem");
  EXPECT_EQ(c.request_timeout, milliseconds(11000));
  EXPECT_EQ(c.hub.history_max_events, 7u);
  EXPECT_EQ(c.hub.history_max_age, milliseconds(180000));
  EXPECT_EQ(c.hub.history_max_bytes, size_t{64} << 20);
  EXPECT_EQ(c.hub.max_connections, 77u);
  EXPECT_EQ(c.hub.max_subscribers_per_topic, 5u);
  EXPECT_EQ(c.hub.max_topics, 99u);
  EXPECT_EQ(c.hub.max_event_bytes, 2u << 20);
  EXPECT_EQ(c.hub.max_topic_length, 100u);
  EXPECT_EQ(c.hub.coalesce_window, milliseconds(3));
  ASSERT_EQ(c.endpoints.size(), 5u);
  const Endpoint& s = c.endpoints[0];
  EXPECT_EQ(s.kind, EndpointKind::kSubscribe);
  EXPECT_EQ(s.path, "/s");
  EXPECT_EQ(s.stream.heartbeat, milliseconds(500));
  EXPECT_EQ(s.stream.retry, milliseconds(3000));
  EXPECT_EQ(s.stream.retry_jitter, milliseconds(250));
  EXPECT_EQ(s.stream.write_stall_timeout, milliseconds(45000));
  EXPECT_EQ(s.stream.dead_peer_timeout, milliseconds(5000));
  EXPECT_EQ(s.stream.max_lifetime, milliseconds(3600000));
  EXPECT_EQ(s.stream.lifetime_jitter, milliseconds(300000));
  EXPECT_EQ(s.stream.max_queued_bytes, 2u << 20);
  EXPECT_EQ(s.stream.replay_batch_bytes, 32u << 10);
  EXPECT_EQ(s.stream.padding_bytes, 2048u);
  EXPECT_EQ(s.stream.max_topics_per_connection, 4u);
  EXPECT_FALSE(s.stream.poll_enabled);
  EXPECT_EQ(s.stream.poll_timeout, milliseconds(10000));
  EXPECT_EQ(s.stream.poll_max_events, 50u);
  EXPECT_EQ(s.stream.gap_event, "lost events");
  EXPECT_THAT(s.stream.cors_origins,
              ElementsAre("https://a.example", "https://b.example"));
  EXPECT_TRUE(s.stream.cors_credentials);
  EXPECT_EQ(s.stream.cors_max_age, milliseconds(86400000));
  const Endpoint& p = c.endpoints[1];
  EXPECT_EQ(p.kind, EndpointKind::kPublish);
  EXPECT_EQ(p.publish.max_body_bytes, 1024u);
  EXPECT_EQ(p.publish.bearer_token, "pubtok");
  EXPECT_TRUE(p.publish.allow_unauthenticated);
  EXPECT_EQ(c.endpoints[2].kind, EndpointKind::kPoll);
  EXPECT_TRUE(c.endpoints[2].stream.poll_enabled);
  EXPECT_EQ(c.endpoints[3].kind, EndpointKind::kMetrics);
  EXPECT_EQ(c.endpoints[4].kind, EndpointKind::kStatus);

  ASSERT_TRUE(c.redis.has_value());
  const redis::RedisOptions& r = *c.redis;
  EXPECT_EQ(r.address, "unix:/run/redis.sock");
  EXPECT_EQ(r.username, "evsse");
  EXPECT_EQ(r.password, "p a s s");
  EXPECT_EQ(r.database, 3);
  EXPECT_EQ(r.key_prefix, "app:");
  EXPECT_EQ(r.max_events, 5000u);
  EXPECT_EQ(r.max_age, milliseconds(7200000));
  EXPECT_EQ(r.stream_ttl, milliseconds(3 * 3600000));
  EXPECT_EQ(r.connect_timeout, milliseconds(1000));
  EXPECT_EQ(r.command_timeout, milliseconds(3000));
  EXPECT_EQ(r.reconnect_min, milliseconds(200));
  EXPECT_EQ(r.reconnect_max, milliseconds(10000));
  EXPECT_EQ(r.probe_interval, milliseconds(500));
  EXPECT_EQ(r.probe_timeout, milliseconds(2000));
  EXPECT_EQ(r.tcp_user_timeout, milliseconds(8000));
  EXPECT_EQ(r.wait_replicas, 1);
  EXPECT_EQ(r.wait_timeout, milliseconds(700));
  EXPECT_EQ(r.sentinel_master, "mymaster");
  EXPECT_THAT(r.sentinels, ElementsAre("10.0.0.1:26379", "[::1]:26380"));
  EXPECT_EQ(r.sentinel_password, "s e n");

  ASSERT_TRUE(c.kafka.has_value());
  const kafka::KafkaOptions& k = *c.kafka;
  EXPECT_THAT(k.brokers, ElementsAre("127.0.0.1:9092", "[::1]:9093"));
  EXPECT_EQ(k.event_header, "x-sse-type");
  EXPECT_EQ(k.client_id, "edge-7");
  EXPECT_EQ(k.publish_timeout, milliseconds(4000));
  EXPECT_EQ(k.fetch_timeout, milliseconds(1500));
  EXPECT_EQ(k.metadata_refresh, milliseconds(2000));
  ASSERT_EQ(k.settings.size(), 1u);
  EXPECT_EQ(k.settings[0].first, "socket.keepalive.enable");
  EXPECT_EQ(k.settings[0].second, "true");

  // everything.conf uses every directive of the table: a new row needs a line
  // here (and an EXPECT).
  auto tree = Parse(everything, "everything.conf");
  ASSERT_TRUE(tree.ok());
  // cluster cannot share a redis block with address, sentinel and
  // database: ConfValues.ClusterSeeds sets it.
  std::set<std::string> used = {"include", "cluster"};
  std::function<void(const std::vector<Node>&)> walk =
      [&](const std::vector<Node>& nodes) {
        for (const Node& n : nodes) {
          used.insert(n.name);
          walk(n.children);
        }
      };
  walk(*tree);
  std::set<std::string> table;
  for (const DirectiveInfo& d : DirectiveTable()) table.emplace(d.name);
  EXPECT_EQ(used, table);
}

TEST(ConfTls, ListenSslAndTheSslDirectivesGoTogether) {
  ServerConfig c = Load(
      "server {\n listen 0.0.0.0:8443 ssl;\n ssl_certificate a.pem;\n"
      " ssl_certificate_key /k/a.key;\n}\n");
  EXPECT_TRUE(c.listen.ssl);
  EXPECT_EQ(c.listen.port, 8443);
  EXPECT_EQ(c.tls_where, "main.conf:3");
  EXPECT_EQ(c.tls.min_version, TlsVersion::kTls12);
  EXPECT_EQ(c.tls.max_version, TlsVersion::kTls13);
  EXPECT_EQ(Error("server {\n listen 0.0.0.0:8443 ssl;\n}"),
            "main.conf:2: directive \"listen\": ssl needs ssl_certificate and "
            "ssl_certificate_key in this server block");
  EXPECT_EQ(Error("server {\n listen 0.0.0.0:8443;\n ssl_certificate a.pem;\n"
                  " ssl_certificate_key a.key;\n}"),
            "main.conf:3: directive \"ssl_certificate\": TLS is off: add ssl "
            "to listen (listen 0.0.0.0:8443 ssl;)");
  EXPECT_EQ(Error("server { listen 0.0.0.0:8443 tls; }"),
            "main.conf:1: directive \"listen\": invalid parameter \"tls\" "
            "(only ssl)");
  EXPECT_THAT(Error("server { ssl_protocols TLSv1.1 TLSv1.2; }"),
              HasSubstr("main.conf:1: directive \"ssl_protocols\": TLSv1.1 "
                        "is not supported (TLSv1.2 or TLSv1.3)"));
  EXPECT_THAT(Error("server { ssl_protocols TLSv1.2 TLSv1.2; }"),
              HasSubstr("duplicate value \"TLSv1.2\""));
}

TEST(ConfTls, RelativePathsAreRelativeToTheirFile) {
  Files f;
  f.files["etc/evsse/main.conf"] =
      "server {\n listen 127.0.0.1:0 ssl;\n include tls.conf;\n}\n";
  f.files["etc/evsse/tls.conf"] =
      "ssl_certificate certs/chain.pem;\nssl_certificate_key /abs/key.pem;\n"
      "ssl_client_certificate ca.pem;\n";
  auto r = LoadFile("etc/evsse/main.conf", f.options());
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->tls.certificate_file, "etc/evsse/certs/chain.pem");
  EXPECT_EQ(r->tls.key_file, "/abs/key.pem");
  EXPECT_EQ(r->tls.client_ca_file, "etc/evsse/ca.pem");
  EXPECT_EQ(r->tls_where, "etc/evsse/tls.conf:1");
}

TEST(ConfDirectives, TableIsConsistent) {
  std::set<std::string_view> names;
  for (const DirectiveInfo& d : DirectiveTable()) {
    EXPECT_TRUE(names.insert(d.name).second) << "duplicate row " << d.name;
    EXPECT_NE(d.contexts, 0u) << d.name;
    EXPECT_GE(d.min_args, 0) << d.name;
    if (d.max_args >= 0) {
      EXPECT_LE(d.min_args, d.max_args) << d.name;
    }
    EXPECT_LE(d.min, d.max) << d.name;
    EXPECT_EQ(FindDirective(d.name), &d);
  }
  EXPECT_EQ(FindDirective("nope"), nullptr);
}

// --- The shipped files -------------------------------------------------------

// Uncomment removes the "#" of every "#directive" line (a "#" followed by
// neither a space nor another "#"), keeping "# comments". "#cluster" stays
// commented: it is an alternative to address and sentinel, not combinable
// with them.
std::string Uncomment(const std::string& text) {
  std::stringstream in(text);
  std::string line, out;
  while (std::getline(in, line)) {
    size_t i = line.find_first_not_of(' ');
    if (i != std::string::npos && line[i] == '#' && i + 1 < line.size() &&
        line[i + 1] != ' ' && line[i + 1] != '#' &&
        line.compare(i, 9, "#cluster ") != 0)
      line.erase(i, 1);
    out += line + "\n";
  }
  return out;
}

// Every commented-out directive of conf/evsse.conf holds the built-in default
// (the file is parsed with all of them switched on).
TEST(ConfShipped, EvsseConfListsTheDefaults) {
  std::string text = Uncomment(ReadSource("conf/evsse.conf"));
  auto r = LoadString(text, std::string(EVSSE_SOURCE_DIR) + "/conf/evsse.conf");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  const ServerConfig& c = *r;
  ServerConfig d;
  EXPECT_EQ(c.listen.host, d.listen.host);
  EXPECT_EQ(c.listen.port, d.listen.port);
  EXPECT_EQ(c.shutdown_timeout, d.shutdown_timeout);
  EXPECT_EQ(c.request_timeout, d.request_timeout);
  EXPECT_EQ(c.listen.ssl, d.listen.ssl);
  EXPECT_EQ(c.ssl_protocols, d.ssl_protocols);
  EXPECT_EQ(c.tls.certificate_file, d.tls.certificate_file);
  EXPECT_EQ(c.tls.key_file, d.tls.key_file);
  EXPECT_EQ(c.tls.min_version, d.tls.min_version);
  EXPECT_EQ(c.tls.max_version, d.tls.max_version);
  EXPECT_EQ(c.tls.ciphers, d.tls.ciphers);
  EXPECT_EQ(c.tls.curves, d.tls.curves);
  EXPECT_EQ(c.tls.client_ca_file, d.tls.client_ca_file);
  ExpectSame(c.hub, d.hub);
  ASSERT_EQ(c.endpoints.size(), 5u);
  StreamOptions stream = c.endpoints[0].stream;
  EXPECT_THAT(stream.cors_origins, ElementsAre("https://app.example.com"));
  stream.cors_origins.clear();  // an example too: the default is none
  ExpectSame(stream, StreamOptions{});
  ExpectSame(c.endpoints[1].publish, PublishOptions{});
  ASSERT_TRUE(c.redis.has_value());
  redis::RedisOptions ro = *c.redis;
  // The sentinel line is an example too: the default is none.
  EXPECT_EQ(ro.sentinel_master, "mymaster");
  EXPECT_EQ(ro.sentinels.size(), 3u);
  ro.sentinel_master.clear();
  ro.sentinels.clear();
  ExpectSame(ro, redis::RedisOptions{});
  // The kafka block: brokers and librdkafka are examples (no default).
  ASSERT_TRUE(c.kafka.has_value());
  kafka::KafkaOptions k;
  EXPECT_THAT(c.kafka->brokers, ElementsAre("127.0.0.1:9092"));
  EXPECT_EQ(c.kafka->event_header, k.event_header);
  EXPECT_EQ(c.kafka->client_id, k.client_id);
  EXPECT_EQ(c.kafka->publish_timeout, k.publish_timeout);
  EXPECT_EQ(c.kafka->fetch_timeout, k.fetch_timeout);
  EXPECT_EQ(c.kafka->metadata_refresh, k.metadata_refresh);
  ASSERT_EQ(c.kafka->settings.size(), 1u);
  EXPECT_EQ(c.kafka->settings[0].first, "security.protocol");
}

// DirectiveLines maps the name of each line "name args" or "#name args" to
// its arguments (first occurrence, ";" dropped): the default that
// conf/evsse.conf shows, "... {" for a block.
std::map<std::string, std::string> DirectiveLines(const std::string& text) {
  std::map<std::string, std::string> found;
  std::stringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    size_t i = line.find_first_not_of(' ');
    if (i == std::string::npos) continue;
    if (line[i] == '#') ++i;
    size_t end = i;
    while (end < line.size() && (std::islower(line[end]) || line[end] == '_'))
      ++end;
    if (end > i && end < line.size() &&
        (line[end] == ' ' || line[end] == ';')) {
      std::string args = line.substr(end);
      args.erase(0, args.find_first_not_of(' '));
      if (!args.empty() && args.back() == ';') args.pop_back();
      found.emplace(line.substr(i, end - i), args);
    }
  }
  return found;
}

// Every directive of the table is in conf/evsse.conf and in the reference
// conf/README.md, with the default evsse.conf shows (EvsseConfListsTheDefaults
// checks that one against the code).
TEST(ConfShipped, EveryDirectiveIsInEvsseConfAndInTheReference) {
  std::map<std::string, std::string> conf =
      DirectiveLines(ReadSource("conf/evsse.conf"));
  std::map<std::string, std::string> reference =
      DefaultCells(ReadSource("conf/README.md"));
  // Lines of evsse.conf that show an example, not the default.
  const std::set<std::string> examples = {"include",  "cors_origins",
                                          "sentinel", "cluster",
                                          "brokers",  "librdkafka"};
  for (const DirectiveInfo& d : DirectiveTable()) {
    std::string name(d.name);
    auto c = conf.find(name);
    auto r = reference.find(name);
    EXPECT_TRUE(c != conf.end()) << name << " is missing from conf/evsse.conf";
    EXPECT_TRUE(r != reference.end())
        << name << " has no row \"| `" << name << "` | default | ... |\" in "
        << "conf/README.md";
    if (c == conf.end() || r == reference.end()) continue;
    const std::string& args = c->second;
    if (!args.empty() && args.back() == '{') continue;  // a block
    if (examples.count(name)) {
      EXPECT_FALSE(r->second.empty())
          << name << ": no default in conf/README.md";
    } else if (args == "\"\"") {
      EXPECT_EQ(r->second, "empty") << name << " in conf/README.md";
    } else {
      EXPECT_EQ(r->second, "`" + args + "`") << name << " in conf/README.md";
    }
  }
}

// --- An application's own directives -----------------------------------------

// AppOptions: a made-up application's settings, one of each kind.
struct AppOptions {
  size_t max_widgets = 10;
  size_t widget_bytes = 4096;
  Millis widget_ttl{60000};
  bool widgets_on = false;
  std::string widget_secret;
  std::string colour = "red";
  std::vector<std::string> widget_tags;
};

Directives AppDirectives(AppOptions* o) {
  Directives d;
  d.Count("max_widgets", kServer, 1, 100, &o->max_widgets)
      .Size("widget_bytes", kServer | kMain, 1024, 1 << 20, &o->widget_bytes)
      .Duration("widget_ttl", kServer, Millis(1000), Millis(3600000),
                &o->widget_ttl)
      .Bool("widgets", kServer, &o->widgets_on)
      .String("widget_secret", kServer, 1, 64, CheckToken68, true,
              &o->widget_secret);
  AppDirective colour;
  colour.info = {"widget_colour", kEndpoint, 1u << 0, 1, 1,
                 Setter::kEnum,   false,     false,   0, 2};
  colour.enum_names = {"red", "green", "blue"};
  colour.set = [o](const Value& v) {
    o->colour = std::vector<std::string>{"red", "green", "blue"}[v.number];
    return std::string();
  };
  d.Add(std::move(colour));
  AppDirective tags;
  tags.info = {"widget_tags",       kServer, 31,    1, 4,
               Setter::kStringList, true,    false, 1, 16};
  tags.check = [](std::string_view t) {
    return t.find('!') != std::string_view::npos ? std::string("no \"!\"")
                                                 : std::string();
  };
  tags.set = [o](const Value& v) -> std::string {
    for (const std::string& t : v.words) {
      if (t == "forbidden") return "tag " + Quote(t) + " is reserved";
      o->widget_tags.push_back(t);
    }
    return "";
  };
  d.Add(std::move(tags));
  d.Check(kServer, [o](const ServerConfig& c, const SetAt& at) -> Status {
    if (o->max_widgets > c.hub.max_topics)
      return DirectiveError(*at("max_widgets"), "more widgets than max_topics");
    return Status::Ok();
  });
  return d;
}

std::string AppError(const std::string& text) {
  AppOptions o;
  auto r = LoadString(text, "app.conf", {}, AppDirectives(&o));
  EXPECT_FALSE(r.ok()) << "parsed: " << text;
  return r.ok() ? "" : r.status().message();
}

TEST(ConfApp, DirectivesLandInTheApplicationsStruct) {
  AppOptions o;
  Directives d = AppDirectives(&o);
  auto r = LoadString(
      "widget_bytes 8k;\n"
      "server {\n max_widgets 7; widget_ttl 2m; widgets on;\n"
      " widget_secret Abc-123; widget_tags a b; widget_tags c;\n"
      " heartbeat_typo_free_zone 1;\n}\n",
      "app.conf", {}, d);
  ASSERT_FALSE(r.ok());  // an unknown directive is still an error
  EXPECT_EQ(r.status().message(),
            "app.conf:5: directive \"heartbeat_typo_free_zone\": unknown "
            "directive");
  AppOptions o2;
  r = LoadString(
      "widget_bytes 8k;\n"
      "server {\n max_widgets 7; widget_ttl 2m; widgets on;\n"
      " widget_secret Abc-123; widget_tags a b; widget_tags c;\n"
      " endpoint subscribe /e { widget_colour blue; heartbeat 2s; }\n}\n",
      "app.conf", {}, AppDirectives(&o2));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(o2.widget_bytes, 8192u);
  EXPECT_EQ(o2.max_widgets, 7u);
  EXPECT_EQ(o2.widget_ttl, milliseconds(120000));
  EXPECT_TRUE(o2.widgets_on);
  EXPECT_EQ(o2.widget_secret, "Abc-123");
  EXPECT_THAT(o2.widget_tags, ElementsAre("a", "b", "c"));
  EXPECT_EQ(o2.colour, "blue");
  // The library's part is filled as without the application's directives.
  ASSERT_EQ(r->endpoints.size(), 1u);
  EXPECT_EQ(r->endpoints[0].stream.heartbeat, milliseconds(2000));
  // Defaults stay when a directive is absent.
  AppOptions o3;
  ASSERT_TRUE(
      LoadString("server { }", "app.conf", {}, AppDirectives(&o3)).ok());
  EXPECT_EQ(o3.max_widgets, 10u);
  EXPECT_EQ(o3.colour, "red");
}

TEST(ConfApp, ErrorsReadAsTheLibrarys) {
  EXPECT_EQ(AppError("server { max_widget 3; }"),
            "app.conf:1: directive \"max_widget\": unknown directive (did "
            "you mean \"max_widgets\"?)");
  EXPECT_EQ(AppError("max_widgets 3;"),
            "app.conf:1: directive \"max_widgets\": not allowed in the main "
            "context (allowed in: server)");
  EXPECT_EQ(AppError("server { endpoint poll /p { widget_colour red; } }"),
            "app.conf:1: directive \"widget_colour\": not allowed in a "
            "\"poll\" endpoint (allowed in: subscribe)");
  EXPECT_EQ(AppError("server { max_widgets 101; }"),
            "app.conf:1: directive \"max_widgets\": value out of range "
            "\"101\" (1..100)");
  EXPECT_EQ(AppError("server { widget_bytes 1q; }"),
            "app.conf:1: directive \"widget_bytes\": invalid size \"1q\" "
            "(use bytes or k, m, g: 64k)");
  EXPECT_EQ(AppError("server { widget_ttl 2h; }"),
            "app.conf:1: directive \"widget_ttl\": value out of range \"2h\" "
            "(1s..1h)");
  EXPECT_EQ(AppError("server { widgets maybe; }"),
            "app.conf:1: directive \"widgets\": invalid value \"maybe\" (use "
            "on or off)");
  EXPECT_EQ(AppError("server {\n max_widgets 1;\n max_widgets 2;\n}"),
            "app.conf:3: directive \"max_widgets\": is duplicate, first set at "
            "app.conf:2");
  EXPECT_EQ(AppError("server { max_widgets 1 2; }"),
            "app.conf:1: directive \"max_widgets\": unexpected argument \"2\" "
            "(takes 1)");
  EXPECT_EQ(AppError("server { widgets on { } }"),
            "app.conf:1: directive \"widgets\": takes no block, unexpected "
            "\"{\"");
  EXPECT_EQ(
      AppError("server { endpoint subscribe /e { widget_colour pink; } }"),
      "app.conf:1: directive \"widget_colour\": invalid value \"pink\" "
      "(one of: red, green, blue)");
  EXPECT_EQ(AppError("server { widget_tags a \"b!\"; }"),
            "app.conf:1: directive \"widget_tags\": no \"!\" \"b!\"");
  EXPECT_EQ(AppError("server { widget_tags a forbidden; }"),
            "app.conf:1: directive \"widget_tags\": tag \"forbidden\" is "
            "reserved");
  // Secrets stay hidden, in the value's error and after a missing ";".
  EXPECT_EQ(AppError("server { widget_secret \"s3cret!\"; }"),
            "app.conf:1: directive \"widget_secret\": invalid character in "
            "token (use A-Z a-z 0-9 - . _ ~ + / =) (value hidden)");
  EXPECT_EQ(AppError("server { widget_secret\n s3cret extra; }"),
            "app.conf:1: directive \"widget_secret\": missing \";\" before "
            "(value hidden)");
  // The application's rule points at its directive.
  EXPECT_EQ(AppError("server {\n max_topics 5;\n max_widgets 6;\n}"),
            "app.conf:3: directive \"max_widgets\": more widgets than "
            "max_topics");
  // Without the application's set, its directives are unknown.
  EXPECT_EQ(Error("server { max_widgets 3; }"),
            "main.conf:1: directive \"max_widgets\": unknown directive");
}

TEST(ConfApp, BadRowsAreRefusedByBuild) {
  int n = 0;
  Directives clash;
  size_t x = 0;
  clash.Count("heartbeat", kServer, 0, 1, &x);
  auto r = LoadString("", "app.conf", {}, clash);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(),
            "application directive \"heartbeat\": the library has a "
            "directive of that name");
  Directives twice;
  twice.Count("widgets", kServer, 0, 1, &x).Count("widgets", kMain, 0, 1, &x);
  r = LoadString("", "app.conf", {}, twice);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(),
            "application directive \"widgets\": registered twice");
  Directives block;
  AppDirective b;
  b.info = {"widget_block", kServer, 31,    0, 0,
            Setter::kBlock, false,   false, 0, 0};
  b.set = [&n](const Value&) {
    ++n;
    return std::string();
  };
  block.Add(std::move(b));
  r = LoadString("", "app.conf", {}, block);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(),
            "application directive \"widget_block\": this kind is the "
            "library's own");
  EXPECT_EQ(n, 0);
}

TEST(ConfApp, DirectivesMayMoveBeforeUse) {
  AppOptions o;
  Directives a = AppDirectives(&o);
  Directives b = std::move(a);  // the rows' names move with them
  ASSERT_TRUE(LoadString("server { max_widgets 9; }", "app.conf", {}, b).ok());
  EXPECT_EQ(o.max_widgets, 9u);
  ASSERT_NE(b.Find("widget_ttl"), nullptr);
  EXPECT_EQ(b.Find("widget_ttl")->info.name, "widget_ttl");
}

}  // namespace
}  // namespace evsse::conf
