// evsse-tail: print the events of a server-sent event stream.
//
//   evsse-tail [--header 'Name: value']... [--last-event-id ID]
//              [--idle-timeout MS] [--cacert FILE] [--insecure]
//              [--cert FILE --key FILE] [--json] URL
//   evsse-tail --stdin [--json]
//
// With a URL (http:// or https://) it subscribes with evsse::Client:
// reconnecting with Last-Event-ID, honouring `retry:`, until Ctrl-C, a 204,
// an HTTP error or a refused certificate. https:// verifies the server
// against the system's CAs, or against --cacert FILE instead; --insecure
// skips verification; --cert and --key present a client certificate.
// With --stdin it parses a stream from standard input as it arrives.
//
// Output, one event per line, flushed at once:
//   text:   [type] id=ID data   (further data lines indented by two spaces)
//   --json: {"type":...,"data":...,"id":...} plus "retry":N once the stream
//           set one; --stdin --json ends with {"last_event_id":...,"retry":...}
//           (retry null if never set).
// Connection notices and errors go to standard error.
#include <event2/event.h>
#include <evsse/client.h>
#include <evsse/stream_parser.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>

namespace {

const char kUsage[] =
    "usage: evsse-tail [--header 'Name: value']... [--last-event-id ID]\n"
    "                  [--idle-timeout MS] [--cacert FILE] [--insecure]\n"
    "                  [--cert FILE --key FILE] [--json] URL\n"
    "       evsse-tail --stdin [--json]\n"
    "\n"
    "Prints each event of a text/event-stream as one line:\n"
    "  [type] id=ID data        (default; more data lines indented)\n"
    "  {\"type\":..,\"data\":..,\"id\":..[,\"retry\":N]}   (--json)\n"
    "With a URL: reconnects and resumes (Last-Event-ID) until Ctrl-C, a 204,\n"
    "an HTTP error or a refused certificate (exit status 1). --idle-timeout:\n"
    "reconnect after MS without a byte (default 45000, 0 = off).\n"
    "https:// URLs: the server's certificate must chain to the system's CAs,\n"
    "or to those in --cacert FILE (PEM) instead, and name the URL's host;\n"
    "--insecure skips that check (tests only). --cert/--key: a client\n"
    "certificate and its key (PEM) for servers that require one.\n"
    "With --stdin: parses standard input; --json adds a last line\n"
    "{\"last_event_id\":..,\"retry\":N|null}.\n";

// AppendJson appends s as a JSON string. The parser hands us valid UTF-8
// (invalid input became U+FFFD), so only quotes, backslashes and control
// characters need escaping; everything else is copied as is.
void AppendJson(std::string& out, std::string_view s) {
  out += '"';
  for (char ch : s) {
    unsigned char c = static_cast<unsigned char>(ch);
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\b':
        out += "\\b";
        break;
      case '\f':
        out += "\\f";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out += ch;
        }
    }
  }
  out += '"';
}

void PrintLine(const std::string& line) {
  std::fwrite(line.data(), 1, line.size(), stdout);
  std::fflush(stdout);
}

void PrintEvent(const evsse::StreamParser::Event& e,
                std::optional<uint64_t> retry, bool json) {
  std::string line;
  if (json) {
    line = "{\"type\":";
    AppendJson(line, e.type);
    line += ",\"data\":";
    AppendJson(line, e.data);
    line += ",\"id\":";
    AppendJson(line, e.last_event_id);
    if (retry) line += ",\"retry\":" + std::to_string(*retry);
    line += '}';
  } else {
    line = "[" + e.type + "] id=" + e.last_event_id + " ";
    for (char c : e.data)
      line += c == '\n' ? std::string("\n  ") : std::string(1, c);
  }
  PrintLine(line + '\n');
}

int TailStdin(bool json) {
  evsse::StreamParser parser;
  parser.on_event = [&](const evsse::StreamParser::Event& e) {
    PrintEvent(e, parser.retry(), json);
  };
  char buf[65536];
  for (;;) {
    ssize_t n = read(STDIN_FILENO, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      std::fprintf(stderr, "evsse-tail: read: %s\n", std::strerror(errno));
      return 1;
    }
    if (n == 0) break;
    evsse::Status s =
        parser.Feed(std::string_view(buf, static_cast<size_t>(n)));
    if (!s.ok()) {
      std::fprintf(stderr, "evsse-tail: %s\n", s.ToString().c_str());
      return 1;
    }
  }
  parser.Finish();
  if (json) {
    std::string line = "{\"last_event_id\":";
    AppendJson(line, parser.last_event_id());
    line += ",\"retry\":";
    line += parser.retry() ? std::to_string(*parser.retry()) : "null";
    PrintLine(line + "}\n");
  }
  return 0;
}

void OnSignal(evutil_socket_t, short, void* arg) {
  static_cast<evsse::Client*>(arg)->Close();  // on_close ends the loop
}

int TailUrl(evsse::ClientOptions options, bool json) {
  std::signal(SIGPIPE, SIG_IGN);
  if (options.insecure)
    std::fputs(
        "evsse-tail: --insecure: the server's certificate is not verified\n",
        stderr);
  event_base* base = event_base_new();
  auto created = evsse::Client::Create(base, options);
  if (!created.ok()) {
    std::fprintf(stderr, "evsse-tail: %s\n",
                 created.status().ToString().c_str());
    event_base_free(base);
    return 2;
  }
  std::unique_ptr<evsse::Client> client = std::move(created.value());
  evsse::Client* c = client.get();
  int rc = 0;
  c->OnOpen([&] {
    std::fprintf(stderr, "evsse-tail: connected to %s\n", options.url.c_str());
  });
  c->OnEvent(
      [&](const evsse::Client::Event& e) { PrintEvent(e, c->retry(), json); });
  c->OnError([&](const evsse::Status& s) {
    if (c->ready_state() == evsse::Client::ReadyState::kConnecting)
      std::fprintf(stderr, "evsse-tail: %s; reconnecting in %lld ms\n",
                   s.ToString().c_str(),
                   static_cast<long long>(c->next_delay().count()));
  });
  c->OnClose([&](const evsse::Status& s) {
    if (s.code() != evsse::StatusCode::kCancelled) {
      std::fprintf(stderr, "evsse-tail: %s\n",
                   s.ok() ? s.message().c_str() : s.ToString().c_str());
      if (!s.ok()) rc = 1;
    }
    event_base_loopexit(base, nullptr);
  });
  event* sigint = evsignal_new(base, SIGINT, &OnSignal, c);
  event* sigterm = evsignal_new(base, SIGTERM, &OnSignal, c);
  event_add(sigint, nullptr);
  event_add(sigterm, nullptr);
  c->Start().IgnoreError();  // fails only when already started
  event_base_dispatch(base);
  event_free(sigint);
  event_free(sigterm);
  client.reset();
  event_base_loop(base, EVLOOP_NONBLOCK);
  event_base_free(base);
  return rc;
}

}  // namespace

int main(int argc, char** argv) {
  evsse::ClientOptions options;
  options.idle_timeout = std::chrono::milliseconds(45000);
  bool json = false, from_stdin = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    bool has_value = i + 1 < argc;
    if (a == "--help" || a == "-h") {
      std::fputs(kUsage, stdout);
      return 0;
    } else if (a == "--json") {
      json = true;
    } else if (a == "--stdin") {
      from_stdin = true;
    } else if ((a == "--header" || a == "-H") && has_value) {
      std::string h = argv[++i];
      size_t colon = h.find(':');
      if (colon == std::string::npos) {
        std::fprintf(stderr, "evsse-tail: --header wants 'Name: value'\n");
        return 2;
      }
      size_t v = h.find_first_not_of(" \t", colon + 1);
      options.headers.emplace_back(h.substr(0, colon),
                                   v == std::string::npos ? "" : h.substr(v));
    } else if (a == "--last-event-id" && has_value) {
      options.last_event_id = argv[++i];
    } else if (a == "--cacert" && has_value) {
      options.ca_file = argv[++i];
    } else if (a == "--cert" && has_value) {
      options.client_cert_file = argv[++i];
    } else if (a == "--key" && has_value) {
      options.client_key_file = argv[++i];
    } else if (a == "--insecure") {
      options.insecure = true;
    } else if (a == "--idle-timeout" && has_value) {
      options.idle_timeout = std::chrono::milliseconds(std::atoll(argv[++i]));
    } else if (a.empty() || a[0] == '-' || !options.url.empty()) {
      std::fprintf(stderr, "evsse-tail: unexpected argument \"%s\"\n%s",
                   a.c_str(), kUsage);
      return 2;
    } else {
      options.url = a;
    }
  }
  if (from_stdin != options.url.empty()) {
    std::fputs(kUsage, stderr);
    return 2;
  }
  return from_stdin ? TailStdin(json) : TailUrl(std::move(options), json);
}
