// Fuzz target: the configuration language (evsse/conf.h), from memory.
//
// Input: the text of a configuration file, "fuzz.conf". `include` reads the
// same text again (for the first few files; then "No such file"), and a
// glob matches one file, so include cycles and depth limits are reached.
// Properties:
//  - Parse and Build never crash;
//  - an error message starts with "<file>:<line>: " where the file is
//    fuzz.conf or an included path and the line exists, or is a read error;
//    it holds no control byte (it reaches terminals and logs);
//  - a secret argument (tokens, passwords) never appears in a message;
//  - each word of the input that parses as a size or a duration formats
//    back to a text that parses to the same value; a host:port has a port
//    in 0..65535; Quote gives no control byte.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "evsse/conf.h"
#include "fuzz_check.h"

namespace {

namespace conf = evsse::conf;

bool NoControlBytes(std::string_view s) {
  for (char c : s) {
    unsigned char u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) return false;
  }
  return true;
}

size_t Count(std::string_view hay, std::string_view needle) {
  size_t n = 0;
  for (size_t at = hay.find(needle); at != std::string_view::npos;
       at = hay.find(needle, at + 1)) {
    ++n;
  }
  return n;
}

// Secrets collects the secret arguments of the tree (at any depth).
void Secrets(const std::vector<conf::Node>& nodes,
             std::vector<std::string>* out) {
  for (const conf::Node& n : nodes) {
    const conf::DirectiveInfo* d = conf::FindDirective(n.name);
    if (d != nullptr && d->secret) {
      for (size_t i = 0; i < n.args.size(); ++i) {
        if (d->setter != conf::Setter::kWords || i == 0) {
          out->push_back(n.args[i].text);
        }
      }
    }
    Secrets(n.children, out);
  }
}

void CheckMessage(const std::string& msg, std::string_view text) {
  EVSSE_FUZZ_CHECK(!msg.empty());
  EVSSE_FUZZ_CHECK(NoControlBytes(msg));
  if (msg.rfind("cannot read ", 0) == 0) return;
  // "<file>:<line>: ...": every file holds the same text. A file name may
  // hold ':' (include a:b), so look for the first ":<digits>: ".
  uint64_t line = 0;
  bool found = false;
  for (size_t at = msg.find(':'); at != std::string::npos && !found;
       at = msg.find(':', at + 1)) {
    size_t i = at + 1;
    line = 0;
    while (i < msg.size() && msg[i] >= '0' && msg[i] <= '9' &&
           line < (1u << 30)) {
      line = line * 10 + static_cast<uint64_t>(msg[i++] - '0');
    }
    found = i > at + 1 && msg.compare(i, 2, ": ") == 0;
  }
  EVSSE_FUZZ_CHECK(found);
  EVSSE_FUZZ_CHECK(line >= 1 && line <= Count(text, "\n") + 1);
}

void CheckValue(std::string_view word) {
  if (auto size = conf::ParseSize(word); size.ok()) {
    auto back = conf::ParseSize(conf::FormatSize(*size));
    EVSSE_FUZZ_CHECK(back.ok() && *back == *size);
  } else {
    EVSSE_FUZZ_CHECK(NoControlBytes(size.status().message()));
  }
  if (auto d = conf::ParseDuration(word); d.ok()) {
    EVSSE_FUZZ_CHECK(d->count() >= 0);
    auto back = conf::ParseDuration(conf::FormatDuration(*d));
    EVSSE_FUZZ_CHECK(back.ok() && *back == *d);
  } else {
    EVSSE_FUZZ_CHECK(NoControlBytes(d.status().message()));
  }
  if (auto hp = conf::ParseHostPort(word); hp.ok()) {
    EVSSE_FUZZ_CHECK(hp->port >= 0 && hp->port <= 65535 && !hp->host.empty());
  }
  if (auto b = conf::ParseBool(word); b.ok()) {
    EVSSE_FUZZ_CHECK(word == (*b ? "on" : "off"));
  }
  (void)conf::ParseCount(word);
  (void)conf::ValidateRedisAddress(word);
  std::string q = conf::Quote(word);
  EVSSE_FUZZ_CHECK(NoControlBytes(q) && q.size() >= 2 && q.front() == '"' &&
                   q.back() == '"');
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* bytes, size_t size) {
  const std::string text(reinterpret_cast<const char*>(bytes), size);

  int reads = 0;
  conf::ParseOptions options;
  options.read = [&](const std::string& path) -> evsse::Result<std::string> {
    // Each include of k files at depth 16 would be k^16 parses: bounded.
    if (++reads > 3) {
      return evsse::Status(evsse::StatusCode::kNotFound,
                           "No such file or directory");
    }
    return text;
  };
  // Small nesting limits, so that short inputs reach both.
  options.max_include_depth = 2;
  options.max_block_depth = 4;
  options.glob = [](const std::string& pattern)
      -> evsse::Result<std::vector<std::string>> {
    std::string one = pattern;
    for (char& c : one) {
      if (c == '*' || c == '?' || c == '[') c = 'x';
    }
    return std::vector<std::string>{one};
  };

  evsse::Result<std::vector<conf::Node>> tree =
      conf::Parse(text, "fuzz.conf", options);
  evsse::Result<conf::ServerConfig> config =
      tree.ok() ? conf::Build(*tree)
                : evsse::Result<conf::ServerConfig>(tree.status());
  if (!tree.ok()) {
    CheckMessage(tree.status().message(), text);
  } else if (!config.ok()) {
    const std::string msg = config.status().message();
    CheckMessage(msg, text);
    std::vector<std::string> secrets;
    Secrets(*tree, &secrets);
    for (const std::string& secret : secrets) {
      // Only a token written once, long enough not to match by chance.
      // A directive name may be quoted by a "did you mean" hint.
      if (secret.size() >= 6 && Count(text, secret) == 1 &&
          conf::FindDirective(secret) == nullptr) {
        // Messages quote values as Quote() does: look for that form (the
        // bare word may be part of the message's own text, "warning").
        const std::string quoted = conf::Quote(secret);
        // Quote() cuts long values ("first 64 bytes..."): when the shown
        // part is also written elsewhere (another directive's argument),
        // a message quoting that one is no leak.
        std::string shown = quoted.substr(1, quoted.size() - 2);
        if (shown.size() > 3 && shown.compare(shown.size() - 3, 3, "...") == 0)
          shown.resize(shown.size() - 3);
        if (Count(text, shown) != 1) continue;
        if (msg.find(quoted) == std::string::npos) continue;
        // The quoted form may be the message's own text around other
        // quoted values ("listen": invalid address "..." holds
        // `": invalid address "`): with the secret written otherwise, the
        // same message holds it too, and it is no leak.
        std::string other = text;
        other.replace(other.find(secret), secret.size(),
                      std::string(secret.size(), 'Z'));
        reads = 0;
        evsse::Result<std::vector<conf::Node>> other_tree =
            conf::Parse(other, "fuzz.conf", options);
        if (other_tree.ok()) {
          evsse::Result<conf::ServerConfig> other_config =
              conf::Build(*other_tree);
          if (!other_config.ok() &&
              other_config.status().message().find(quoted) != std::string::npos)
            continue;
        }
        std::fprintf(stderr, "secret %s in: %s\n", quoted.c_str(), msg.c_str());
        EVSSE_FUZZ_CHECK(false);
      }
    }
  } else {
    for (const conf::Endpoint& ep : config->endpoints) {
      EVSSE_FUZZ_CHECK(!ep.path.empty());
    }
  }

  size_t begin = 0;
  for (int words = 0; words < 16 && begin < text.size(); ++words) {
    size_t end = text.find_first_of(" \t\r\n;{}", begin);
    if (end == std::string::npos) end = text.size();
    if (end > begin)
      CheckValue(std::string_view(text).substr(begin, end - begin));
    begin = end + 1;
  }
  return 0;
}
