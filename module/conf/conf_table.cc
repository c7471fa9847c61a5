// The directive table: each directive is a row of data (name, contexts,
// arity, setter, range, the member it fills) and one generic setter per value
// kind fills it, as nginx's ngx_command_t rows do. The member is given as a
// pointer-to-member template argument, so a row whose setter does not match
// the member's type does not compile. Where a directive may appear and how
// often is checked by Build (conf_build.cc) before a setter runs.
#include <algorithm>
#include <limits>
#include <type_traits>
#include <variant>

#include "evsse/conf.h"

namespace evsse::conf {
namespace {

// --- Values ------------------------------------------------------------------

struct EnumIndex {
  int index;
};
using KeyValue = std::pair<std::string, std::string>;
using Parsed =
    std::variant<uint64_t, Millis, bool, std::string, std::vector<std::string>,
                 EnumIndex, HostPort, KeyValue>;

enum class Target {
  kNone,
  kConfig,
  kHub,
  kStream,
  kPublish,
  kRedis,
  kKafka,
  kTls
};

template <class C>
constexpr Target TargetFor() {
  if constexpr (std::is_same_v<C, ServerConfig>) {
    return Target::kConfig;
  } else if constexpr (std::is_same_v<C, HubOptions>) {
    return Target::kHub;
  } else if constexpr (std::is_same_v<C, StreamOptions>) {
    return Target::kStream;
  } else if constexpr (std::is_same_v<C, PublishOptions>) {
    return Target::kPublish;
  } else if constexpr (std::is_same_v<C, redis::RedisOptions>) {
    return Target::kRedis;
  } else if constexpr (std::is_same_v<C, kafka::KafkaOptions>) {
    return Target::kKafka;
  } else {
    static_assert(std::is_same_v<C, TlsOptions>, "no Target for this struct");
    return Target::kTls;
  }
}

template <class C, class T>
C ClassOf(T C::*);
template <class C, class T>
T TypeOf(T C::*);
template <auto M>
using MemberType = decltype(TypeOf(M));

// Store writes a parsed value into the member M of `object`.
template <auto M>
std::string Store(void* object, Parsed& v) {
  using C = decltype(ClassOf(M));
  using T = MemberType<M>;
  T& field = static_cast<C*>(object)->*M;
  if constexpr (std::is_same_v<T, size_t>) {
    field = static_cast<size_t>(std::get<uint64_t>(v));
  } else if constexpr (std::is_same_v<T, int>) {
    field = static_cast<int>(std::get<uint64_t>(v));
  } else if constexpr (std::is_enum_v<T>) {
    field = static_cast<T>(std::get<EnumIndex>(v).index);
  } else if constexpr (std::is_same_v<T, std::vector<KeyValue>>) {
    auto& kv = std::get<KeyValue>(v);
    for (const KeyValue& have : field)
      if (have.first == kv.first) return "duplicate setting " + Quote(kv.first);
    field.push_back(std::move(kv));
  } else {
    field = std::move(std::get<T>(v));
  }
  return "";
}

// Validators return a problem ("" when fine) for one string value.
using Validator = StringCheck;

// --- Rows --------------------------------------------------------------------

constexpr unsigned KindBit(EndpointKind k) {
  return 1u << static_cast<unsigned>(k);
}
constexpr unsigned kStreamKinds =
    KindBit(EndpointKind::kSubscribe) | KindBit(EndpointKind::kPoll);
constexpr unsigned kPublishKinds = KindBit(EndpointKind::kPublish);
constexpr unsigned kAllKinds = 31;
constexpr uint64_t kK = 1024, kM = kK * 1024, kG = kM * 1024;
constexpr uint64_t kSec = 1000, kMin = 60 * kSec, kHour = 60 * kMin,
                   kDay = 24 * kHour;

struct Row {
  DirectiveInfo info;
  Target target = Target::kNone;
  std::string (*store)(void*, Parsed&) = nullptr;
  std::vector<std::string_view> enum_names;
  Validator validate = nullptr;
};

template <auto M, class Want>
Row Make(std::string_view name, unsigned ctx, Setter setter, int min_args,
         int max_args, uint64_t min, uint64_t max, unsigned kinds) {
  static_assert(
      std::is_same_v<MemberType<M>, Want> ||
          (std::is_same_v<Want, size_t> && std::is_same_v<MemberType<M>, int>),
      "the setter does not match the member's type");
  Row r;
  r.info = {name,   ctx,   kinds, min_args, max_args,
            setter, false, false, min,      max};
  r.target = TargetFor<decltype(ClassOf(M))>();
  r.store = &Store<M>;
  return r;
}

template <auto M>
Row Size(std::string_view n, unsigned ctx, uint64_t min, uint64_t max,
         unsigned kinds = kAllKinds) {
  return Make<M, size_t>(n, ctx, Setter::kSize, 1, 1, min, max, kinds);
}
template <auto M>
Row Duration(std::string_view n, unsigned ctx, uint64_t min, uint64_t max,
             unsigned kinds = kAllKinds) {
  return Make<M, Millis>(n, ctx, Setter::kDuration, 1, 1, min, max, kinds);
}
template <auto M>
Row Count(std::string_view n, unsigned ctx, uint64_t min, uint64_t max,
          unsigned kinds = kAllKinds) {
  return Make<M, size_t>(n, ctx, Setter::kCount, 1, 1, min, max, kinds);
}
template <auto M>
Row Bool(std::string_view n, unsigned ctx, unsigned kinds = kAllKinds) {
  return Make<M, bool>(n, ctx, Setter::kBool, 1, 1, 0, 1, kinds);
}
// String: min/max bound the length in bytes.
template <auto M>
Row String(std::string_view n, unsigned ctx, uint64_t min, uint64_t max,
           Validator v, bool secret = false, unsigned kinds = kAllKinds) {
  Row r = Make<M, std::string>(n, ctx, Setter::kString, 1, 1, min, max, kinds);
  r.validate = v;
  r.info.secret = secret;
  return r;
}
template <auto M>
Row StringList(std::string_view n, unsigned ctx, int max_args, uint64_t min,
               uint64_t max, Validator v, unsigned kinds = kAllKinds) {
  Row r = Make<M, std::vector<std::string>>(n, ctx, Setter::kStringList, 1,
                                            max_args, min, max, kinds);
  r.validate = v;
  return r;
}
Row Block(std::string_view n, unsigned ctx, int args, bool repeatable) {
  Row r;
  r.info = {n,          ctx,   kAllKinds, args, args, Setter::kBlock,
            repeatable, false, 0,         0};
  return r;
}

// --- Validators --------------------------------------------------------------

std::string Token68(std::string_view s) { return CheckToken68(s); }
std::string NoLineBreaks(std::string_view s) {
  if (s.find_first_of(std::string_view("\r\n\0", 3)) != std::string_view::npos)
    return "invalid value (no CR, LF or NUL)";
  return "";
}
std::string Origin(std::string_view s) { return CheckCorsOrigin(s); }
std::string KeyPrefix(std::string_view s) {
  if (s.find_first_of("{} \t\r\n") != std::string_view::npos)
    return "invalid key prefix (no braces or spaces)";
  return "";
}
std::string AnyString(std::string_view s) { return NoLineBreaks(s); }
std::string Broker(std::string_view s) {
  size_t colon = s.rfind(':');
  if (colon == std::string_view::npos || colon == 0 || colon + 1 == s.size() ||
      s.substr(colon + 1).find_first_not_of("0123456789") !=
          std::string_view::npos ||
      s.find_first_of(", \t\r\n") != std::string_view::npos)
    return "invalid broker (HOST:PORT)";
  return "";
}
// ClusterSeed: a Redis Cluster node to ask for the slot map (HOST:PORT).
std::string ClusterSeed(std::string_view s) {
  if (s.rfind("unix:", 0) == 0) return "invalid seed (HOST:PORT, not unix:)";
  Status status = ValidateRedisAddress(std::string(s));
  return status.ok() ? "" : status.message();
}
std::string HeaderName(std::string_view s) {
  for (char c : s)
    if (static_cast<unsigned char>(c) <= 0x20 || c == 0x7f)
      return "invalid header name (no spaces or control characters)";
  return "";
}
std::string TlsProtocol(std::string_view s) {
  auto v = ParseTlsVersion(s);
  return v.ok() ? "" : v.status().message();
}

const std::vector<Row>& Rows() {
  using S = StreamOptions;
  using P = PublishOptions;
  using R = redis::RedisOptions;
  using KO = kafka::KafkaOptions;
  static const std::vector<Row> rows = [] {
    std::vector<Row> v;
    Row include;
    include.info = {"include",        kAnyContext, kAllKinds, 1, 1,
                    Setter::kInclude, true,        false,     0, 0};
    v.push_back(include);
    // main
    Row level = Make<&HubOptions::log_level, LogLevel>(
        "log_level", kMain, Setter::kEnum, 1, 1, 0, 3, kAllKinds);
    level.enum_names = {"debug", "info", "warning", "error"};
    v.push_back(level);
    v.push_back(Duration<&ServerConfig::shutdown_timeout>("shutdown_timeout",
                                                          kMain, 0, kHour));
    v.push_back(Block("server", kMain, 0, false));
    // server
    v.push_back(Make<&ServerConfig::listen, HostPort>(
        "listen", kServer, Setter::kHostPort, 1, 2, 0, 65535, kAllKinds));
    using T = TlsOptions;
    v.push_back(String<&T::certificate_file>("ssl_certificate", kServer, 0,
                                             4096, NoLineBreaks));
    v.push_back(String<&T::key_file>("ssl_certificate_key", kServer, 0, 4096,
                                     NoLineBreaks));
    v.push_back(StringList<&ServerConfig::ssl_protocols>(
        "ssl_protocols", kServer, 2, 1, 16, TlsProtocol));
    v.push_back(
        String<&T::ciphers>("ssl_ciphers", kServer, 1, 4096, NoLineBreaks));
    v.push_back(
        String<&T::curves>("ssl_ecdh_curve", kServer, 1, 256, NoLineBreaks));
    v.push_back(String<&T::client_ca_file>("ssl_client_certificate", kServer, 0,
                                           4096, NoLineBreaks));
    v.push_back(Duration<&ServerConfig::request_timeout>("request_timeout",
                                                         kServer, kSec, kHour));
    v.push_back(Count<&HubOptions::history_max_events>("history_max_events",
                                                       kServer, 0, 10000000));
    v.push_back(Duration<&HubOptions::history_max_age>("history_max_age",
                                                       kServer, 0, 365 * kDay));
    v.push_back(Size<&HubOptions::history_max_bytes>("history_max_bytes",
                                                     kServer, 0, 1024 * kG));
    v.push_back(Duration<&HubOptions::coalesce_window>("coalesce_window",
                                                       kServer, 0, kSec));
    v.push_back(Count<&HubOptions::max_connections>("max_connections", kServer,
                                                    1, 10000000));
    v.push_back(Count<&HubOptions::max_subscribers_per_topic>(
        "max_subscribers_per_topic", kServer, 0, 10000000));
    v.push_back(
        Count<&HubOptions::max_topics>("max_topics", kServer, 1, 100000000));
    v.push_back(
        Size<&HubOptions::max_event_bytes>("max_event_bytes", kServer, 1, kG));
    v.push_back(Count<&HubOptions::max_topic_length>("max_topic_length",
                                                     kServer, 1, 1024));
    v.push_back(Block("endpoint", kServer, 2, true));
    v.push_back(Block("redis", kServer, 0, false));
    v.push_back(Block("kafka", kServer, 0, false));
    // endpoint: subscribe and poll
    const unsigned E = kEndpoint, K = kStreamKinds;
    v.push_back(Duration<&S::heartbeat>("heartbeat", E, 0, kHour, K));
    v.push_back(Duration<&S::retry>("retry", E, 0, kHour, K));
    v.push_back(Duration<&S::retry_jitter>("retry_jitter", E, 0, kHour, K));
    v.push_back(Duration<&S::write_stall_timeout>("write_stall_timeout", E, 0,
                                                  kHour, K));
    v.push_back(
        Duration<&S::dead_peer_timeout>("dead_peer_timeout", E, 0, kHour, K));
    v.push_back(Duration<&S::max_lifetime>("max_lifetime", E, 0, 30 * kDay, K));
    v.push_back(
        Duration<&S::lifetime_jitter>("lifetime_jitter", E, 0, 30 * kDay, K));
    v.push_back(Size<&S::max_queued_bytes>("max_queued_bytes", E, kK, kG, K));
    v.push_back(
        Size<&S::replay_batch_bytes>("replay_batch_bytes", E, 1, 64 * kM, K));
    v.push_back(Size<&S::padding_bytes>("padding_bytes", E, 0, 64 * kK, K));
    v.push_back(Count<&S::max_topics_per_connection>(
        "max_topics_per_connection", E, 1, 64, K));
    v.push_back(Bool<&S::poll_enabled>("poll", E, K));
    v.push_back(Duration<&S::poll_timeout>("poll_timeout", E, 0, kHour, K));
    v.push_back(Count<&S::poll_max_events>("poll_max_events", E, 1, 100000, K));
    v.push_back(
        String<&S::gap_event>("gap_event", E, 1, 64, NoLineBreaks, false, K));
    v.push_back(
        StringList<&S::cors_origins>("cors_origins", E, 64, 1, 256, Origin, K));
    v.push_back(Bool<&S::cors_credentials>("cors_credentials", E, K));
    v.push_back(Duration<&S::cors_max_age>("cors_max_age", E, 0, kDay, K));
    // endpoint: publish
    const unsigned PK = kPublishKinds;
    v.push_back(Size<&P::max_body_bytes>("max_body_bytes", E, 1, kG, PK));
    v.push_back(
        String<&P::bearer_token>("bearer_token", E, 0, 256, Token68, true, PK));
    v.push_back(
        Bool<&P::allow_unauthenticated>("allow_unauthenticated", E, PK));
    // redis
    v.push_back(Make<&R::address, std::string>(
        "address", kRedis, Setter::kAddress, 1, 1, 1, 65535, kAllKinds));
    Row sentinel;
    sentinel.info = {"sentinel",        kRedis, kAllKinds, 2, 17,
                     Setter::kSentinel, false,  false,     1, 65535};
    sentinel.target = Target::kRedis;
    sentinel.store = [](void* object, Parsed& v) -> std::string {
      auto& list = std::get<std::vector<std::string>>(v);
      auto* r = static_cast<R*>(object);
      r->sentinel_master = list[0];
      r->sentinels.assign(list.begin() + 1, list.end());
      return "";
    };
    v.push_back(sentinel);
    v.push_back(String<&R::sentinel_password>("sentinel_password", kRedis, 0,
                                              512, AnyString, true));
    v.push_back(StringList<&R::cluster_seeds>("cluster", kRedis, 64, 1, 262,
                                              ClusterSeed));
    v.push_back(String<&R::username>("username", kRedis, 0, 256, AnyString));
    v.push_back(
        String<&R::password>("password", kRedis, 0, 512, AnyString, true));
    v.push_back(Count<&R::database>("database", kRedis, 0, 65535));
    v.push_back(String<&R::key_prefix>("key_prefix", kRedis, 0, 64, KeyPrefix));
    v.push_back(Count<&R::max_events>("max_events", kRedis, 0, 100000000));
    v.push_back(Duration<&R::max_age>("max_age", kRedis, 0, 365 * kDay));
    v.push_back(Duration<&R::stream_ttl>("stream_ttl", kRedis, 0, 365 * kDay));
    v.push_back(
        Duration<&R::connect_timeout>("connect_timeout", kRedis, 1, kMin));
    v.push_back(
        Duration<&R::command_timeout>("command_timeout", kRedis, 1, kMin));
    v.push_back(Duration<&R::reconnect_min>("reconnect_min", kRedis, 1, kHour));
    v.push_back(Duration<&R::reconnect_max>("reconnect_max", kRedis, 1, kHour));
    v.push_back(
        Duration<&R::probe_interval>("probe_interval", kRedis, 0, kMin));
    v.push_back(Duration<&R::probe_timeout>("probe_timeout", kRedis, 1, kMin));
    v.push_back(
        Duration<&R::tcp_user_timeout>("tcp_user_timeout", kRedis, 0, kHour));
    v.push_back(Count<&R::wait_replicas>("wait_replicas", kRedis, 0, 64));
    v.push_back(Duration<&R::wait_timeout>("wait_timeout", kRedis, 1, kMin));
    // kafka
    v.push_back(
        StringList<&KO::brokers>("brokers", kKafka, 64, 3, 512, Broker));
    v.push_back(
        String<&KO::event_header>("event_header", kKafka, 1, 256, HeaderName));
    v.push_back(String<&KO::client_id>("client_id", kKafka, 1, 256, AnyString));
    v.push_back(
        Duration<&KO::publish_timeout>("publish_timeout", kKafka, 1, kHour));
    v.push_back(
        Duration<&KO::fetch_timeout>("fetch_timeout", kKafka, 1, kHour));
    v.push_back(
        Duration<&KO::metadata_refresh>("metadata_refresh", kKafka, 1, kHour));
    Row setting = Make<&KO::settings, std::vector<KeyValue>>(
        "librdkafka", kKafka, Setter::kKeyValue, 2, 2, 1, 4096, kAllKinds);
    setting.info.repeatable = true;
    setting.info.secret = true;  // sasl.password and the like
    setting.validate = AnyString;
    v.push_back(setting);
    return v;
  }();
  return rows;
}

const Row* FindRow(std::string_view name) {
  for (const Row& r : Rows())
    if (r.info.name == name) return &r;
  return nullptr;
}

std::string RangeText(const DirectiveInfo& d) {
  switch (d.setter) {
    case Setter::kSize:
      return FormatSize(d.min) + ".." + FormatSize(d.max);
    case Setter::kDuration:
      return FormatDuration(Millis(d.min)) + ".." +
             FormatDuration(Millis(d.max));
    default:
      return std::to_string(d.min) + ".." + std::to_string(d.max);
  }
}

// Setter: one directive's arguments into its member.
class ValueSetter {
 public:
  explicit ValueSetter(ServerConfig* config) : config_(*config) {}

  static Status Fail(const Node& n, const std::string& problem) {
    return InvalidArgumentError(n.file + ":" + std::to_string(n.line) +
                                ": directive " + Quote(n.name) + ": " +
                                problem);
  }

  // Shown quotes argument `i` unless it is a secret.
  static std::string Shown(const Row& r, size_t i, const std::string& text) {
    if (r.info.secret && (r.info.setter != Setter::kWords || i == 0))
      return "(value hidden)";
    return Quote(text);
  }

  Status InRange(const Row& r, const Node& n, uint64_t v) {
    if (v < r.info.min || v > r.info.max)
      return Fail(n, "value out of range " + Quote(n.args[0].text) + " (" +
                         RangeText(r.info) + ")");
    return Status::Ok();
  }

  Status CheckString(const Row& r, const Node& n, size_t i) {
    const std::string& t = n.args[i].text;
    if (t.size() < r.info.min)
      return Fail(n, "must not be empty " + Shown(r, i, t));
    if (t.size() > r.info.max)
      return Fail(n, "too long, at most " + std::to_string(r.info.max) +
                         " bytes " + Shown(r, i, t));
    if (r.validate) {
      std::string problem = r.validate(t);
      if (!problem.empty()) return Fail(n, problem + " " + Shown(r, i, t));
    }
    return Status::Ok();
  }

  Status ParseValue(const Row& r, const Node& n, Parsed* v) {
    const std::string& t0 = n.args[0].text;
    auto number = [&](Result<uint64_t> x) -> Status {
      if (!x.ok()) return Fail(n, x.status().message());
      if (Status s = InRange(r, n, *x); !s.ok()) return s;
      *v = *x;
      return Status::Ok();
    };
    switch (r.info.setter) {
      case Setter::kSize:
        return number(ParseSize(t0));
      case Setter::kCount:
        return number(ParseCount(t0));
      case Setter::kDuration: {
        auto x = ParseDuration(t0);
        if (!x.ok()) return Fail(n, x.status().message());
        uint64_t ms = static_cast<uint64_t>(x->count());
        if (Status s = InRange(r, n, ms); !s.ok()) return s;
        *v = *x;
        return Status::Ok();
      }
      case Setter::kBool: {
        auto x = ParseBool(t0);
        if (!x.ok()) return Fail(n, x.status().message());
        *v = *x;
        return Status::Ok();
      }
      case Setter::kString:
        if (Status s = CheckString(r, n, 0); !s.ok()) return s;
        *v = t0;
        return Status::Ok();
      case Setter::kStringList: {
        std::vector<std::string> list;
        for (size_t i = 0; i < n.args.size(); ++i) {
          if (Status s = CheckString(r, n, i); !s.ok()) return s;
          if (std::find(list.begin(), list.end(), n.args[i].text) != list.end())
            return Fail(n, "duplicate value " + Quote(n.args[i].text));
          list.push_back(n.args[i].text);
        }
        *v = std::move(list);
        return Status::Ok();
      }
      case Setter::kEnum: {
        for (size_t i = 0; i < r.enum_names.size(); ++i)
          if (r.enum_names[i] == t0) {
            *v = EnumIndex{static_cast<int>(i)};
            return Status::Ok();
          }
        std::string names;
        for (std::string_view e : r.enum_names)
          names += (names.empty() ? "" : ", ") + std::string(e);
        return Fail(n,
                    "invalid value " + Quote(t0) + " (one of: " + names + ")");
      }
      case Setter::kHostPort: {
        auto x = ParseHostPort(t0);
        if (!x.ok()) return Fail(n, x.status().message());
        if (n.args.size() > 1) {
          if (n.args[1].text != "ssl")
            return Fail(n, "invalid parameter " + Quote(n.args[1].text) +
                               " (only ssl)");
          x->ssl = true;
        }
        *v = *x;
        return Status::Ok();
      }
      case Setter::kAddress:
        if (Status s = ValidateRedisAddress(t0); !s.ok())
          return Fail(n, s.message());
        *v = t0;
        return Status::Ok();
      case Setter::kSentinel: {
        // Sentinel's master names are words (sentinel.conf's grammar).
        if (t0.empty() || t0.size() > 256 ||
            t0.find_first_of(" \t\r\n\"'") != std::string::npos)
          return Fail(n, "invalid master name " + Quote(t0) +
                             " (1 to 256 bytes, no spaces or quotes)");
        std::vector<std::string> list{t0};
        for (size_t i = 1; i < n.args.size(); ++i) {
          const std::string& a = n.args[i].text;
          if (Status s = ValidateRedisAddress(a); !s.ok())
            return Fail(n, "sentinel " + s.message());
          if (a.rfind("unix:", 0) == 0)
            return Fail(n,
                        "sentinel " + Quote(a) + ": sentinels are HOST:PORT");
          if (std::find(list.begin() + 1, list.end(), a) != list.end())
            return Fail(n, "duplicate sentinel " + Quote(a));
          list.push_back(a);
        }
        *v = std::move(list);
        return Status::Ok();
      }
      case Setter::kWords: {
        std::vector<std::string> list;
        for (const Arg& a : n.args) list.push_back(a.text);
        *v = std::move(list);
        return Status::Ok();
      }
      case Setter::kKeyValue: {
        for (size_t i = 0; i < 2; ++i)
          if (Status s = CheckString(r, n, i); !s.ok()) return s;
        *v = KeyValue{t0, n.args[1].text};
        return Status::Ok();
      }
      case Setter::kBlock:
      case Setter::kInclude:
        break;
    }
    return InternalError("no setter for " + Quote(n.name));
  }

  void* Object(Target t, Endpoint* ep) {
    switch (t) {
      case Target::kConfig:
        return &config_;
      case Target::kHub:
        return &config_.hub;
      case Target::kStream:
        return ep ? &ep->stream : nullptr;
      case Target::kPublish:
        return ep ? &ep->publish : nullptr;
      case Target::kRedis:
        return config_.redis ? &*config_.redis : nullptr;
      case Target::kKafka:
        return config_.kafka ? &*config_.kafka : nullptr;
      case Target::kTls:
        return &config_.tls;
      case Target::kNone:
        break;
    }
    return nullptr;
  }

  Status Apply(const Row& r, const Node& n, Endpoint* ep) {
    Parsed v;
    if (Status s = ParseValue(r, n, &v); !s.ok()) return s;
    void* object = Object(r.target, ep);
    if (!object || !r.store)
      return InternalError("no target for " + Quote(n.name));
    std::string problem = r.store(object, v);
    if (!problem.empty()) return Fail(n, problem);
    return Status::Ok();
  }

  // ApplyApp: an application's row, parsed as a library row of its kind,
  // then handed to its setter.
  Status ApplyApp(const AppDirective& d, const Node& n) {
    Row r;
    r.info = d.info;
    for (const std::string& e : d.enum_names) r.enum_names.push_back(e);
    r.validate = d.check;
    Parsed parsed;
    if (Status s = ParseValue(r, n, &parsed); !s.ok()) return s;
    Value v;
    std::visit(
        [&v](auto& x) {
          using T = std::decay_t<decltype(x)>;
          if constexpr (std::is_same_v<T, uint64_t>) {
            v.number = x;
          } else if constexpr (std::is_same_v<T, Millis>) {
            v.duration = x;
          } else if constexpr (std::is_same_v<T, bool>) {
            v.on = x;
          } else if constexpr (std::is_same_v<T, std::string>) {
            v.words.push_back(std::move(x));
          } else if constexpr (std::is_same_v<T, std::vector<std::string>>) {
            v.words = std::move(x);
          } else if constexpr (std::is_same_v<T, EnumIndex>) {
            v.number = static_cast<uint64_t>(x.index);
          } else if constexpr (std::is_same_v<T, HostPort>) {
            v.host_port = std::move(x);
          } else {
            static_assert(std::is_same_v<T, KeyValue>);
            v.words = {std::move(x.first), std::move(x.second)};
          }
        },
        parsed);
    if (!d.set) return InternalError("no setter for " + Quote(n.name));
    std::string problem = d.set(v);
    if (!problem.empty()) return Fail(n, problem);
    return Status::Ok();
  }

 private:
  ServerConfig& config_;
};

}  // namespace

std::string CheckToken68(std::string_view token) {
  for (char c : token) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') ||
              std::string_view("-._~+/=").find(c) != std::string_view::npos;
    if (!ok)
      return "invalid character in token (use A-Z a-z 0-9 - . _ ~ + / =)";
  }
  return "";
}

const char* EndpointKindName(EndpointKind kind) {
  switch (kind) {
    case EndpointKind::kSubscribe:
      return "subscribe";
    case EndpointKind::kPublish:
      return "publish";
    case EndpointKind::kPoll:
      return "poll";
    case EndpointKind::kMetrics:
      return "metrics";
    case EndpointKind::kStatus:
      return "status";
  }
  return "?";
}

const std::vector<DirectiveInfo>& DirectiveTable() {
  static const std::vector<DirectiveInfo> table = [] {
    std::vector<DirectiveInfo> t;
    for (const Row& r : Rows()) t.push_back(r.info);
    return t;
  }();
  return table;
}

const DirectiveInfo* FindDirective(std::string_view name) {
  const Row* r = FindRow(name);
  return r ? &DirectiveTable()[static_cast<size_t>(r - Rows().data())]
           : nullptr;
}

namespace internal {

// SetValue is declared in conf_build.cc, its only caller.
Status SetValue(const Node& directive, ServerConfig* config,
                Endpoint* endpoint) {
  const Row* r = FindRow(directive.name);
  if (!r) return InternalError("no row for " + Quote(directive.name));
  return ValueSetter(config).Apply(*r, directive, endpoint);
}

// SetAppValue: the same for an application's row (conf_build.cc).
Status SetAppValue(const AppDirective& row, const Node& directive,
                   ServerConfig* config) {
  return ValueSetter(config).ApplyApp(row, directive);
}

}  // namespace internal
}  // namespace evsse::conf
