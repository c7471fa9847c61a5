// Build: a parsed tree into a ServerConfig. This file owns the structure
// (which directive may appear where, how often, with how many arguments, in
// which endpoint kind, and the rules between directives); the values are set
// by each row's generic setter in conf_table.cc.
#include <algorithm>
#include <map>

#include "evsse/conf.h"

namespace evsse::conf {
namespace internal {
// Defined in conf_table.cc: parses `directive`'s arguments with its row's
// setter and stores the value into `config` (or `endpoint`).
Status SetValue(const Node& directive, ServerConfig* config,
                Endpoint* endpoint);
// The same for an application's row.
Status SetAppValue(const AppDirective& row, const Node& directive,
                   ServerConfig* config);
}  // namespace internal

namespace {

constexpr unsigned KindBit(EndpointKind k) {
  return 1u << static_cast<unsigned>(k);
}
constexpr unsigned kAllKinds = 31;

const char* ContextName(Context c) {
  switch (c) {
    case kMain:
      return "the main context";
    case kServer:
      return "the server block";
    case kEndpoint:
      return "an endpoint block";
    case kRedis:
      return "the redis block";
    case kKafka:
      return "the kafka block";
    default:
      return "?";
  }
}

std::string AllowedIn(unsigned contexts) {
  static const std::pair<unsigned, const char*> kNames[] = {
      {kMain, "main"},
      {kServer, "server"},
      {kEndpoint, "endpoint"},
      {kRedis, "redis"},
      {kKafka, "kafka"}};
  std::string out;
  for (auto& [bit, name] : kNames) {
    if (!(contexts & bit)) continue;
    if (!out.empty()) out += ", ";
    out += name;
  }
  return out;
}

std::string KindList(unsigned kinds) {
  std::string out;
  for (unsigned k = 0; k < 5; ++k) {
    if (!(kinds & (1u << k))) continue;
    if (!out.empty()) out += ", ";
    out += EndpointKindName(static_cast<EndpointKind>(k));
  }
  return out;
}

size_t EditDistance(std::string_view a, std::string_view b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diag = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t up = row[j];
      row[j] = std::min(
          {row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diag = up;
    }
  }
  return row[b.size()];
}

std::string Suggest(std::string_view name, const Directives* app) {
  const DirectiveInfo* best = nullptr;
  size_t best_d = 3;
  auto consider = [&](const DirectiveInfo& d) {
    size_t dist = EditDistance(name, d.name);
    if (dist < best_d) {
      best_d = dist;
      best = &d;
    }
  };
  for (const DirectiveInfo& d : DirectiveTable()) consider(d);
  if (app)
    for (const AppDirective& d : app->rows()) consider(d.info);
  return best ? " (did you mean " + Quote(best->name) + "?)" : "";
}

// CheckApp: an application's rows must not clash with the library's or each
// other, and must be of a kind the library parses for them.
Status CheckApp(const Directives& app) {
  for (const AppDirective& d : app.rows()) {
    std::string what = "application directive " + Quote(d.info.name) + ": ";
    if (d.info.name.empty()) return InvalidArgumentError(what + "no name");
    if (FindDirective(d.info.name))
      return InvalidArgumentError(what +
                                  "the library has a directive of "
                                  "that name");
    if (app.Find(d.info.name) != &d)
      return InvalidArgumentError(what + "registered twice");
    if (d.info.setter == Setter::kBlock || d.info.setter == Setter::kInclude ||
        d.info.setter == Setter::kSentinel)
      return InvalidArgumentError(what + "this kind is the library's own");
    if ((d.info.contexts & kAnyContext) == 0 || d.info.min_args < 1 ||
        (d.info.max_args >= 0 && d.info.max_args < d.info.min_args) || !d.set)
      return InvalidArgumentError(
          what + "needs a context, 1 or more arguments and a setter");
  }
  return Status::Ok();
}

std::string TakesText(const DirectiveInfo& d) {
  if (d.max_args < 0) return "takes at least " + std::to_string(d.min_args);
  if (d.min_args == d.max_args) return "takes " + std::to_string(d.min_args);
  return "takes " + std::to_string(d.min_args) + " to " +
         std::to_string(d.max_args);
}

std::string At(const Node& n) { return n.file + ":" + std::to_string(n.line); }

class Builder {
 public:
  ServerConfig config;

  explicit Builder(const Directives* app) : app_(app) {}

  Status Block(const std::vector<Node>& nodes, Context ctx, Endpoint* ep) {
    Seen seen;
    for (const Node& n : nodes) {
      const DirectiveInfo* r = FindDirective(n.name);
      const AppDirective* app_row = nullptr;
      if (!r && app_) {
        app_row = app_->Find(n.name);
        if (app_row) r = &app_row->info;
      }
      if (!r || r->setter == Setter::kInclude)
        return Fail(n, "unknown directive" + Suggest(n.name, app_));
      if (!(r->contexts & ctx))
        return Fail(n, std::string("not allowed in ") + ContextName(ctx) +
                           " (allowed in: " + AllowedIn(r->contexts) + ")");
      if (ctx == kEndpoint && !(r->endpoint_kinds & KindBit(ep->kind)))
        return Fail(n, "not allowed in a " + Quote(EndpointKindName(ep->kind)) +
                           " endpoint (allowed in: " +
                           KindList(r->endpoint_kinds) + ")");
      if (Status s = CheckShape(*r, n); !s.ok()) return s;
      // seen: the first of each name (where a rule's error points).
      auto [it, fresh] = seen.emplace(r->name, &n);
      if (!fresh && !r->repeatable)
        return Fail(n, "is duplicate, first set at " + At(*it->second));
      Status s;
      if (app_row) {
        s = internal::SetAppValue(*app_row, n, &config);
      } else if (n.name == "server") {
        s = Block(n.children, kServer, nullptr);
        // What Hub::Create would refuse, --check refuses (rules between
        // directives, such as history_max_bytes against max_event_bytes).
        if (s.ok())
          if (Status v = Validate(config.hub); !v.ok())
            s = Fail(n, v.message());
      } else if (n.name == "endpoint") {
        s = OpenEndpoint(n);
      } else if (n.name == "redis") {
        config.redis.emplace();
        s = Block(n.children, kRedis, nullptr);
      } else if (n.name == "kafka") {
        config.kafka.emplace();
        s = Block(n.children, kKafka, nullptr);
        if (s.ok() && config.kafka->brokers.empty())
          s = Fail(n, "the kafka block needs brokers HOST:PORT...");

      } else {
        s = Apply(n, ep);
      }
      if (!s.ok()) return s;
    }
    return CrossCheck(ctx, ep, seen);
  }

 private:
  using Seen = std::map<std::string_view, const Node*>;

  static Status Fail(const Node& n, const std::string& problem) {
    return InvalidArgumentError(At(n) + ": directive " + Quote(n.name) + ": " +
                                problem);
  }

  // Shown quotes argument `i` unless it is a secret.
  static std::string Shown(const DirectiveInfo& d, size_t i,
                           const std::string& text) {
    if (d.secret && (d.setter != Setter::kWords || i == 0))
      return "(value hidden)";
    return Quote(text);
  }

  Status CheckShape(const DirectiveInfo& d, const Node& n) {
    int count = static_cast<int>(n.args.size());
    bool too_many = d.max_args >= 0 && count > d.max_args;
    bool is_block = d.setter == Setter::kBlock;
    if (too_many || (n.block && !is_block)) {
      // A forgotten ";" makes the next line's words arguments of this one.
      // Shown: the word may be the directive's own secret written on the
      // next line (found by tests/fuzz/conf_fuzz).
      for (size_t i = 0; i < n.args.size(); ++i)
        if (n.args[i].line > n.line)
          return Fail(n, "missing " + Quote(";") + " before " +
                             Shown(d, i, n.args[i].text));
    }
    if (is_block && !n.block) return Fail(n, "needs a block " + Quote("{"));
    if (!is_block && n.block)
      return Fail(n, "takes no block, unexpected " + Quote("{"));
    if (count < d.min_args)
      return Fail(n,
                  (count == 0 ? "missing argument (" : "too few arguments (") +
                      TakesText(d) + ")");
    if (too_many) {
      size_t i = static_cast<size_t>(d.max_args);
      return Fail(n, "unexpected argument " + Shown(d, i, n.args[i].text) +
                         " (" + TakesText(d) + ")");
    }
    return Status::Ok();
  }

  Status Apply(const Node& n, Endpoint* ep) {
    return internal::SetValue(n, &config, ep);
  }

  Status OpenEndpoint(const Node& n) {
    const std::string& kind = n.args[0].text;
    const std::string& path = n.args[1].text;
    Endpoint ep;
    bool known = false;
    for (unsigned k = 0; k < 5 && !known; ++k) {
      if (kind == EndpointKindName(static_cast<EndpointKind>(k))) {
        ep.kind = static_cast<EndpointKind>(k);
        known = true;
      }
    }
    if (!known)
      return Fail(n, "invalid endpoint kind " + Quote(kind) +
                         " (one of: " + KindList(kAllKinds) + ")");
    bool path_ok = !path.empty() && path[0] == '/' && path.size() <= 256;
    for (char c : path)
      if (c <= ' ' || c >= 0x7f || c == '?' || c == '#' || c == '"')
        path_ok = false;
    if (!path_ok)
      return Fail(n, "invalid path " + Quote(path) +
                         " (an absolute path without a query: /events)");
    auto [it, fresh] = paths_.emplace(path, &n);
    if (!fresh)
      return Fail(
          n, "duplicate path " + Quote(path) + ", first at " + At(*it->second));
    ep.path = path;
    ep.where = At(n);
    if (Status s = Block(n.children, kEndpoint, &ep); !s.ok()) return s;
    // What the Hub would refuse, --check refuses: the one validator.
    if (ep.kind == EndpointKind::kSubscribe || ep.kind == EndpointKind::kPoll)
      if (Status s = Validate(ep.stream); !s.ok()) return Fail(n, s.message());
    config.endpoints.push_back(std::move(ep));
    return Status::Ok();
  }

  // CrossCheck: rules between directives of one block, reported at the
  // directive that was set (the first of `a`, `b` found).
  Status CrossCheck(Context ctx, Endpoint* ep, const Seen& seen) {
    auto where = [&](std::string_view a, std::string_view b) -> const Node* {
      auto it = seen.find(a);
      if (it != seen.end()) return it->second;
      it = seen.find(b);
      return it != seen.end() ? it->second : nullptr;
    };
    if (ctx == kEndpoint) {
      const StreamOptions& so = ep->stream;
      if (ep->kind == EndpointKind::kPoll && !so.poll_enabled)
        return Fail(*where("poll", ""),
                    "cannot be off in a poll endpoint " + Quote("off"));
      bool star = std::find(so.cors_origins.begin(), so.cors_origins.end(),
                            "*") != so.cors_origins.end();
      if (star && so.cors_credentials)
        return Fail(*where("cors_origins", ""),
                    "origin " + Quote("*") +
                        " cannot be combined with cors_credentials on");
    }
    if (ctx == kRedis &&
        config.redis->reconnect_min > config.redis->reconnect_max)
      return Fail(*where("reconnect_min", "reconnect_max"),
                  "reconnect_min " +
                      FormatDuration(config.redis->reconnect_min) +
                      " is above reconnect_max " +
                      FormatDuration(config.redis->reconnect_max));
    if (ctx == kRedis && seen.count("cluster")) {
      // A cluster's nodes come from its seeds and its slot map.
      for (std::string_view other : {"address", "sentinel", "database"}) {
        auto it = seen.find(other);
        if (it == seen.end()) continue;
        return Fail(*seen.at("cluster"),
                    "cannot be combined with " + Quote(std::string(other)) +
                        " (" + At(*it->second) + ")" +
                        (other == "database"
                             ? ": a Redis Cluster has only database 0"
                             : ": a cluster's primaries come from its slot "
                               "map"));
      }
    }
    if (ctx == kRedis && config.redis->wait_replicas > 0) {
      const redis::RedisOptions& r = *config.redis;
      Millis limit = r.command_timeout;
      if (r.probe_interval.count() > 0)
        limit = std::min(limit, r.probe_timeout);
      if (r.wait_timeout >= limit)
        return Fail(*where("wait_timeout", "wait_replicas"),
                    "wait_timeout " + FormatDuration(r.wait_timeout) +
                        " must be below command_timeout and probe_timeout "
                        "(a WAIT holds the command connection)");
    }
    if (ctx == kServer) {
      if (Status s = CheckTls(seen); !s.ok()) return s;
    }
    // The application's rules for this block.
    if (app_) {
      SetAt set_at = [&seen](std::string_view name) -> const Node* {
        auto it = seen.find(name);
        return it != seen.end() ? it->second : nullptr;
      };
      for (const auto& [contexts, check] : app_->checks()) {
        if (!(contexts & ctx) || !check) continue;
        if (Status s = check(config, set_at); !s.ok()) return s;
      }
    }
    return Status::Ok();
  }

  // CheckTls: `listen ... ssl` and the ssl_* directives go together; the
  // protocol list becomes the version range; relative paths are resolved.
  Status CheckTls(const Seen& seen) {
    auto at = [&](std::string_view name) -> const Node* {
      auto it = seen.find(name);
      return it != seen.end() ? it->second : nullptr;
    };
    TlsOptions& t = config.tls;
    for (auto [name, path] : {std::pair<std::string_view, std::string*>{
                                  "ssl_certificate", &t.certificate_file},
                              {"ssl_certificate_key", &t.key_file},
                              {"ssl_client_certificate", &t.client_ca_file}}) {
      const Node* n = at(name);
      if (!n || path->empty() || (*path)[0] == '/') continue;
      size_t slash = n->file.rfind('/');
      if (slash != std::string::npos)
        *path = n->file.substr(0, slash + 1) + *path;
    }
    // Each value was checked (ParseTlsVersion) and is unique; "TLSv1.2"
    // sorts before "TLSv1.3".
    auto versions = config.ssl_protocols;
    std::sort(versions.begin(), versions.end());
    t.min_version = *ParseTlsVersion(versions.front());
    t.max_version = *ParseTlsVersion(versions.back());
    if (const Node* n = at("ssl_certificate")) config.tls_where = At(*n);
    const Node* listen = at("listen");
    if (config.listen.ssl) {
      if (t.certificate_file.empty() || t.key_file.empty())
        return Fail(*listen,
                    "ssl needs ssl_certificate and ssl_certificate_key in "
                    "this server block");
      return Status::Ok();
    }
    for (std::string_view name :
         {"ssl_certificate", "ssl_certificate_key", "ssl_client_certificate"})
      if (const Node* n = at(name); n && !n->args[0].text.empty())
        return Fail(*n,
                    "TLS is off: add ssl to listen (listen 0.0.0.0:8443 ssl;)");
    return Status::Ok();
  }

  const Directives* app_;
  std::map<std::string, const Node*> paths_;
};

}  // namespace

Result<ServerConfig> Build(const std::vector<Node>& tree) {
  Builder b(nullptr);
  if (Status s = b.Block(tree, kMain, nullptr); !s.ok()) return s;
  return std::move(b.config);
}

Result<ServerConfig> Build(const std::vector<Node>& tree,
                           const Directives& app) {
  if (Status s = CheckApp(app); !s.ok()) return s;
  Builder b(&app);
  if (Status s = b.Block(tree, kMain, nullptr); !s.ok()) return s;
  return std::move(b.config);
}

}  // namespace evsse::conf
