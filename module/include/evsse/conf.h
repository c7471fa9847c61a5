// evsse::conf: nginx-style configuration files for evsse servers.
//
// Syntax (the one nginx uses):
//
//   # a comment, to the end of the line
//   log_level info;                          # directive value... ;
//   server {                                 # a block
//       listen 127.0.0.1:8080;
//       endpoint subscribe /events {
//           heartbeat 15s;
//           cors_origins "https://app.example" 'https://b.example';
//       }
//       include conf.d/*.conf;               # relative to this file
//   }
//
// Values: strings are bare words or single/double-quoted with the escapes
// \" \' \\ \n \r \t; sizes are bytes or k/m/g (64k, 1m, 2g); durations take
// a unit, ms/s/m/h/d (500ms, 15s, 2m, 1h), and a bare 0 means off; booleans
// are on/off; counts are decimal.
//
// Two stages, both pure (no I/O besides reading files through an injectable
// reader): Parse turns text into a tree of Nodes and expands `include`;
// Build checks every node against the directive table (DirectiveTable) and
// fills a ServerConfig. Every error is a Status whose message reads
//
//   <file>:<line>: directive "<name>": <problem> "<bad token>"
//
// (or `<file>:<line>: <problem>` for a stray "{", "}" or ";" that belongs to
// no directive, and `cannot read "<file>": <reason>` for the first file).
//
// Nothing is ignored: an unknown directive, a directive in the wrong block,
// a wrong argument count, a bad or out-of-range value, a duplicate, an
// unterminated string or block, a missing ";", an unreadable file and an
// include cycle are all errors. Secret values (tokens, passwords) are never
// quoted in messages.
//
// Thread safety: pure functions over values; safe from any thread (the
// default file reader uses the file system).
#ifndef EVSSE_CONF_H_
#define EVSSE_CONF_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "evsse/export.h"
#include "evsse/kafka.h"
#include "evsse/options.h"
#include "evsse/redis.h"
#include "evsse/status.h"
#include "evsse/tls.h"

namespace evsse::conf {

// --- The configuration ------------------------------------------------------

// EndpointKind is what an `endpoint KIND PATH { ... }` block serves.
enum class EndpointKind {
  kSubscribe,  // text/event-stream (evsse::evhttp::Mount)
  kPublish,    // HTTP publish, body = data (evsse::evhttp::MountPublish)
  kPoll,       // a subscribe endpoint for the polling fallback (poll is on)
  kMetrics,    // Prometheus text, served by the application
  kStatus,     // JSON status, served by the application
};

// EndpointKindName returns "subscribe", "publish", ... as written in files.
EVSSE_API const char* EndpointKindName(EndpointKind kind);

struct HostPort {
  std::string host = "127.0.0.1";
  int port = 8080;   // 0 picks a free port
  bool ssl = false;  // `listen HOST:PORT ssl;`: HTTPS (ServerConfig::tls)
};

struct Endpoint {
  EndpointKind kind = EndpointKind::kSubscribe;
  std::string path;
  StreamOptions stream;  // subscribe and poll
  // publish. A publish endpoint needs bearer_token or allow_unauthenticated;
  // Mount refuses it otherwise (prefix its message with `where`).
  PublishOptions publish;
  std::string where;  // "file:line" of the endpoint block, for messages
};

// ServerConfig: everything one configuration file describes.
struct ServerConfig {
  // main context
  Millis shutdown_timeout{5000};  // drain deadline on SIGTERM/SIGINT
  // server block
  HostPort listen;
  // TLS (ssl_certificate, ssl_certificate_key, ssl_protocols, ssl_ciphers,
  // ssl_ecdh_curve, ssl_client_certificate), used when listen has `ssl`.
  // Relative paths are resolved against the directory of the file that
  // names them. Build checks the directives, not the files: the server
  // loads those (and reports a bad one at tls_where).
  TlsOptions tls;
  std::vector<std::string> ssl_protocols = {"TLSv1.2", "TLSv1.3"};
  std::string tls_where;  // "file:line" of ssl_certificate, for messages
  Millis request_timeout{30000};  // ordinary (non-stream) HTTP requests
  HubOptions hub;                 // log_level is set in the main context
  std::vector<Endpoint> endpoints;
  std::optional<redis::RedisOptions> redis;  // a `redis { }` block
  std::optional<kafka::KafkaOptions> kafka;  // a `kafka { }` block
  // An application's own settings are not here: it registers its directives
  // (Directives, below) and they land in its own struct.
};

// --- Parsing ----------------------------------------------------------------

// Arg is one argument of a directive, unquoted and unescaped.
struct Arg {
  std::string text;
  int line = 0;
  bool quoted = false;
};

// Node is one directive: `name args... ;` or `name args... { children }`.
struct Node {
  std::string name;
  std::vector<Arg> args;
  std::string file;
  int line = 0;
  bool block = false;
  std::vector<Node> children;
};

// FileReader returns the contents of `path`, or an error whose message is
// the reason only ("No such file or directory"): the parser adds the path
// and the including file:line.
using FileReader = std::function<Result<std::string>(const std::string& path)>;
// Globber returns the paths matching `pattern`, sorted; no match is an empty
// list, not an error.
using Globber =
    std::function<Result<std::vector<std::string>>(const std::string& pattern)>;

struct ParseOptions {
  FileReader read;  // null: the file system
  Globber glob;     // null: glob(3)
  int max_include_depth = 16;
  int max_block_depth = 16;
};

// Parse tokenizes and parses `text` (named `file` in messages and for
// resolving includes) and expands every `include`.
EVSSE_API Result<std::vector<Node>> Parse(std::string_view text,
                                          const std::string& file,
                                          const ParseOptions& options = {});

// ParseFile reads `path` with options.read, then Parse.
EVSSE_API Result<std::vector<Node>> ParseFile(const std::string& path,
                                              const ParseOptions& options = {});

class Directives;  // an application's own directives (below)

// Build fills a ServerConfig (starting from its defaults) from a parsed tree.
// With `app`, the application's directives are understood too: their values
// land where the application's setters put them.
EVSSE_API Result<ServerConfig> Build(const std::vector<Node>& tree);
EVSSE_API Result<ServerConfig> Build(const std::vector<Node>& tree,
                                     const Directives& app);

// LoadFile = ParseFile + Build; LoadString = Parse + Build.
EVSSE_API Result<ServerConfig> LoadFile(const std::string& path,
                                        const ParseOptions& options = {});
EVSSE_API Result<ServerConfig> LoadFile(const std::string& path,
                                        const ParseOptions& options,
                                        const Directives& app);
EVSSE_API Result<ServerConfig> LoadString(std::string_view text,
                                          const std::string& file = "<string>",
                                          const ParseOptions& options = {});
EVSSE_API Result<ServerConfig> LoadString(std::string_view text,
                                          const std::string& file,
                                          const ParseOptions& options,
                                          const Directives& app);

// --- Values (for applications' flags too) ------------------------------------
//
// Each returns an error message that quotes the bad text, e.g.
// `invalid size "64q" (use bytes or k, m, g: 64k)`.

// ParseSize: "1024", "64k", "1m", "2g" (k = 1024 bytes).
EVSSE_API Result<uint64_t> ParseSize(std::string_view text);
// ParseDuration: "500ms", "15s", "2m", "1h", "1d"; "0" (off). A number
// without a unit other than 0 is refused (seconds or milliseconds?).
EVSSE_API Result<Millis> ParseDuration(std::string_view text);
// ParseCount: a decimal integer.
EVSSE_API Result<uint64_t> ParseCount(std::string_view text);
// ParseBool: "on" or "off".
EVSSE_API Result<bool> ParseBool(std::string_view text);
// ParseHostPort: "127.0.0.1:8080", "localhost:80", "[::1]:8080"; port
// 0..65535.
EVSSE_API Result<HostPort> ParseHostPort(std::string_view text);
// ValidateRedisAddress: HOST:PORT (port 1..65535), [V6]:PORT or
// unix:/absolute/path; the grammar of evsse::pubsub::ParseAddress, which the
// Redis link uses too (a file that passes --check attaches).
EVSSE_API Status ValidateRedisAddress(std::string_view text);
// CheckToken68: a bearer token's characters (A-Z a-z 0-9 - . _ ~ + / =);
// the problem, or "" (the token itself is never in it).
EVSSE_API std::string CheckToken68(std::string_view token);
// FormatSize and FormatDuration write the largest exact unit: 65536 ->
// "64k", 15000 ms -> "15s", 0 -> "0".
EVSSE_API std::string FormatSize(uint64_t bytes);
EVSSE_API std::string FormatDuration(Millis duration);
// Quote renders untrusted text for a message: in double quotes, '"' and
// '\' escaped, control bytes as \xNN, cut after 64 bytes with "...".
EVSSE_API std::string Quote(std::string_view text);

// --- The directive table, for documentation and tests -----------------------

enum Context : unsigned {
  kMain = 1,
  kServer = 2,
  kEndpoint = 4,
  kRedis = 8,
  kKafka = 16,
  kAnyContext = 31,
};

// Setter is how a directive's arguments become a value.
enum class Setter {
  kSize,        // bytes, k, m, g
  kDuration,    // ms, s, m, h, d; 0 = off
  kCount,       // a decimal integer
  kBool,        // on | off
  kString,      // one string
  kStringList,  // one or more strings
  kEnum,        // one of a fixed set of words
  kHostPort,    // HOST:PORT or [IPv6]:PORT
  kAddress,     // HOST:PORT or unix:/path
  kWords,       // WORD... as written, checked by the setter (applications)
  kKeyValue,    // KEY VALUE (one pair per directive)
  kSentinel,    // NAME HOST:PORT... (redis: the master and its sentinels)
  kBlock,       // a block: server, endpoint, redis, kafka
  kInclude,     // include PATH (expanded by Parse)
};

// DirectiveInfo describes one row of the directive table.
struct DirectiveInfo {
  std::string_view name;
  unsigned contexts;        // Context bits where it may appear
  unsigned endpoint_kinds;  // bit (1 << EndpointKind) where allowed
  int min_args;
  int max_args;  // -1: no limit
  Setter setter;
  bool repeatable;
  bool secret;   // never quoted in messages (kWords: the first argument)
  uint64_t min;  // numeric range (bytes, ms, count), when numeric
  uint64_t max;
};

// DirectiveTable lists every directive, in documentation order.
EVSSE_API const std::vector<DirectiveInfo>& DirectiveTable();
// FindDirective returns the row of `name`, or nullptr.
EVSSE_API const DirectiveInfo* FindDirective(std::string_view name);

// --- An application's own directives ----------------------------------------
//
// A server built on evsse may add directives of its own to the language
// (evsse-alerts does: examples/alerts/config.cc). Each is a row like the
// library's: its name, the contexts where it may appear, its value kind,
// arity and range, and a setter that says where the value lands (usually a
// member of the application's options struct, which must outlive the Build).
// The library checks it as it checks its own rows, and its errors read the
// same: `<file>:<line>: directive "<name>": <problem> "<bad token>"`, secrets
// hidden, "did you mean" included. A name the library already has is refused
// by Build. Blocks of an application's own are not supported (its
// directives go into the main context or an existing block).

// Value is one directive's arguments as its kind parses them.
struct Value {
  uint64_t number = 0;             // kSize (bytes), kCount, kEnum (index)
  Millis duration{0};              // kDuration
  bool on = false;                 // kBool
  std::vector<std::string> words;  // kString (one), kStringList, kKeyValue
                                   // (two), kWords (every argument)
  HostPort host_port;              // kHostPort
};

// AppSetter stores a value; a non-empty result is the problem, reported at
// the directive (secret values must not appear in it).
using AppSetter = std::function<std::string(const Value& value)>;
// StringCheck returns the problem with one string argument ("" when fine);
// the library appends the quoted argument (or "(value hidden)").
using StringCheck = std::function<std::string(std::string_view text)>;

struct AppDirective {
  // name, contexts (Context bits), endpoint_kinds, min_args, max_args
  // (strings: 1; lists: up to max_args), setter (any kind but kBlock,
  // kInclude and kSentinel), repeatable, secret, min..max (numbers: the
  // range; strings: the length in bytes).
  DirectiveInfo info;
  std::vector<std::string> enum_names;  // kEnum
  StringCheck check;                    // kString, kStringList, kKeyValue
  AppSetter set;
};

// SetAt returns the node of directive `name` in the block just built
// (nullptr when the block does not set it): where a rule's error points.
using SetAt = std::function<const Node*(std::string_view name)>;
// BlockCheck: a rule between directives, run once a block of its context is
// complete (after the library's own rules for that block). Return
// DirectiveError(*set_at(...), ...) to report it.
using BlockCheck =
    std::function<Status(const ServerConfig& config, const SetAt& set_at)>;

// DirectiveError: `<file>:<line>: directive "<name>": <problem>`.
EVSSE_API Status DirectiveError(const Node& directive,
                                std::string_view problem);

// Directives is an application's set of directives. Movable, not copyable
// (rows refer to their names' storage).
class EVSSE_API Directives {
 public:
  Directives() = default;
  Directives(Directives&&) = default;
  Directives& operator=(Directives&&) = default;
  Directives(const Directives&) = delete;
  Directives& operator=(const Directives&) = delete;

  // The common kinds: the value lands in `*to`.
  Directives& Size(std::string_view name, unsigned contexts, uint64_t min,
                   uint64_t max, size_t* to);
  Directives& Count(std::string_view name, unsigned contexts, uint64_t min,
                    uint64_t max, size_t* to);
  Directives& Duration(std::string_view name, unsigned contexts, Millis min,
                       Millis max, Millis* to);
  Directives& Bool(std::string_view name, unsigned contexts, bool* to);
  // String: `min_bytes`..`max_bytes` long, `check` (may be null) passes.
  Directives& String(std::string_view name, unsigned contexts, size_t min_bytes,
                     size_t max_bytes, StringCheck check, bool secret,
                     std::string* to);
  // Add: any row (its info.name is copied and owned here).
  Directives& Add(AppDirective directive);
  // Check: a rule run after each block of `contexts` (Context bits).
  Directives& Check(unsigned contexts, BlockCheck check);

  // rows() in the order added (their DirectiveInfo, for documentation).
  const std::vector<AppDirective>& rows() const { return rows_; }
  const AppDirective* Find(std::string_view name) const;
  const std::vector<std::pair<unsigned, BlockCheck>>& checks() const {
    return checks_;
  }

 private:
  std::vector<std::unique_ptr<std::string>> names_;
  std::vector<AppDirective> rows_;
  std::vector<std::pair<unsigned, BlockCheck>> checks_;
};

}  // namespace evsse::conf

#endif  // EVSSE_CONF_H_
