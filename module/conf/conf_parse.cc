// The configuration tokenizer and parser: bytes to a tree of Nodes, with
// `include` expanded in place. Files are read only through the injectable
// reader, so tests feed strings.
//
// Why some choices:
//  - Newlines do not end a directive (as in nginx); a forgotten ";" is then
//    seen by Build as a wrong argument count spanning lines, and reported as
//    a missing ";" there.
//  - "#" starts a comment only where a token could start, so "a#b" is one
//    word; a quote inside a bare word is an error rather than a guess.
//  - Include paths are normalized lexically to detect cycles; symlink loops
//    end at max_include_depth.
#include <glob.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "evsse/conf.h"

namespace evsse::conf {
namespace {

constexpr size_t kMaxFileBytes = 16 << 20;

Status Error(const std::string& file, int line, const std::string& problem) {
  return InvalidArgumentError(file + ":" + std::to_string(line) + ": " +
                              problem);
}

Status DirectiveError(const std::string& file, int line,
                      const std::string& name, const std::string& problem) {
  return Error(file, line, "directive " + Quote(name) + ": " + problem);
}

enum class Tok { kWord, kOpen, kClose, kSemi, kEnd };

struct Token {
  Tok kind = Tok::kEnd;
  std::string text;
  int line = 0;
  bool quoted = false;
};

bool IsSpace(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }
bool IsSpecial(char c) { return c == ';' || c == '{' || c == '}'; }

class Lexer {
 public:
  Lexer(std::string_view src, const std::string& file)
      : src_(src), file_(file) {}

  // current_name is the directive being read, for messages.
  void set_current(const std::string* name) { current_ = name; }

  Status Next(Token* t) {
    *t = Token();
    for (;;) {
      if (pos_ >= src_.size()) {
        t->kind = Tok::kEnd;
        t->line = line_;
        return Status::Ok();
      }
      char c = src_[pos_];
      if (c == '\n') {
        ++line_;
        ++pos_;
      } else if (IsSpace(c)) {
        ++pos_;
      } else if (c == '#') {
        while (pos_ < src_.size() && src_[pos_] != '\n') ++pos_;
      } else {
        break;
      }
    }
    t->line = line_;
    char c = src_[pos_];
    if (c == ';' || c == '{' || c == '}') {
      t->kind = c == ';' ? Tok::kSemi : c == '{' ? Tok::kOpen : Tok::kClose;
      t->text = std::string(1, c);
      ++pos_;
      return Status::Ok();
    }
    t->kind = Tok::kWord;
    if (c == '"' || c == '\'') return Quoted(c, t);
    return Bare(t);
  }

 private:
  Status Fail(int line, const std::string& problem) const {
    if (current_) return DirectiveError(file_, line, *current_, problem);
    return Error(file_, line, problem);
  }

  Status CheckByte(char c) const {
    unsigned char u = static_cast<unsigned char>(c);
    if ((u < 0x20 && c != '\t' && c != '\n' && c != '\r') || u == 0x7f)
      return Fail(line_, "unexpected control character " +
                             Quote(std::string_view(&c, 1)));
    return Status::Ok();
  }

  // Escape reads the character after a backslash at pos_.
  Status Escape(std::string* out) {
    if (pos_ + 1 >= src_.size())
      return Fail(line_, "unterminated escape " + Quote("\\"));
    char e = src_[pos_ + 1];
    switch (e) {
      case '"':
      case '\'':
      case '\\':
        *out += e;
        break;
      case 'n':
        *out += '\n';
        break;
      case 'r':
        *out += '\r';
        break;
      case 't':
        *out += '\t';
        break;
      default:
        return Fail(line_, "invalid escape " +
                               Quote(std::string("\\") + std::string(1, e)));
    }
    pos_ += 2;
    return Status::Ok();
  }

  Status Quoted(char q, Token* t) {
    int start_line = line_;
    size_t start = pos_;
    t->quoted = true;
    ++pos_;
    for (;;) {
      if (pos_ >= src_.size())
        return Fail(start_line,
                    "unterminated string " +
                        Quote(src_.substr(
                            start, std::min<size_t>(20, src_.size() - start))));
      char c = src_[pos_];
      if (c == q) {
        ++pos_;
        break;
      }
      if (Status s = CheckByte(c); !s.ok()) return s;
      if (c == '\\') {
        if (Status s = Escape(&t->text); !s.ok()) return s;
        continue;
      }
      if (c == '\n') ++line_;
      t->text += c;
      ++pos_;
    }
    // A string must be followed by a separator: "a"b is not two tokens.
    if (pos_ < src_.size() && !IsSpace(src_[pos_]) && !IsSpecial(src_[pos_]) &&
        src_[pos_] != '#')
      return Fail(line_, "unexpected character after string " +
                             Quote(src_.substr(pos_, 1)));
    return Status::Ok();
  }

  Status Bare(Token* t) {
    while (pos_ < src_.size()) {
      char c = src_[pos_];
      if (IsSpace(c) || IsSpecial(c)) break;
      if (c == '"' || c == '\'')
        return Fail(line_, "unexpected quote in " + Quote(t->text + c));
      if (Status s = CheckByte(c); !s.ok()) return s;
      if (c == '\\') {
        if (Status s = Escape(&t->text); !s.ok()) return s;
        continue;
      }
      t->text += c;
      ++pos_;
    }
    return Status::Ok();
  }

  std::string_view src_;
  const std::string& file_;
  size_t pos_ = 0;
  int line_ = 1;
  const std::string* current_ = nullptr;
};

std::string DirName(const std::string& path) {
  size_t slash = path.rfind('/');
  if (slash == std::string::npos) return "";
  return slash == 0 ? "/" : path.substr(0, slash);
}

// Normalize collapses "." and "dir/.." lexically.
std::string Normalize(const std::string& path) {
  bool absolute = !path.empty() && path[0] == '/';
  std::vector<std::string> parts;
  std::stringstream ss(path);
  std::string part;
  while (std::getline(ss, part, '/')) {
    if (part.empty() || part == ".") continue;
    if (part == ".." && !parts.empty() && parts.back() != "..") {
      parts.pop_back();
    } else if (part == ".." && absolute) {
      continue;
    } else {
      parts.push_back(part);
    }
  }
  std::string out = absolute ? "/" : "";
  for (size_t i = 0; i < parts.size(); ++i) {
    if (i) out += '/';
    out += parts[i];
  }
  return out.empty() ? "." : out;
}

Result<std::string> ReadFromDisk(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status(StatusCode::kNotFound, std::strerror(errno));
  std::string text;
  char buf[8192];
  while (in.read(buf, sizeof buf) || in.gcount() > 0) {
    text.append(buf, static_cast<size_t>(in.gcount()));
    if (text.size() > kMaxFileBytes)
      return InvalidArgumentError("larger than 16 MiB");
  }
  if (in.bad()) return Status(StatusCode::kNotFound, std::strerror(errno));
  return text;
}

Result<std::vector<std::string>> GlobFromDisk(const std::string& pattern) {
  glob_t g{};
  // A directory that does not exist matches nothing; any other error (a
  // directory we may not read) fails rather than silently including less.
  auto on_error = [](const char*, int err) -> int {
    return err != ENOENT && err != ENOTDIR;
  };
  int rc = ::glob(pattern.c_str(), 0, on_error, &g);
  std::vector<std::string> out;
  if (rc == 0) {
    for (size_t i = 0; i < g.gl_pathc; ++i) out.emplace_back(g.gl_pathv[i]);
  }
  globfree(&g);
  if (rc != 0 && rc != GLOB_NOMATCH)
    return Status(StatusCode::kNotFound, "cannot list " + Quote(pattern));
  std::sort(out.begin(), out.end());
  return out;
}

class Parser {
 public:
  explicit Parser(const ParseOptions& options) : options_(options) {
    if (!options_.read) options_.read = ReadFromDisk;
    if (!options_.glob) options_.glob = GlobFromDisk;
  }

  Status ParseText(std::string_view text, const std::string& file,
                   std::vector<Node>* out) {
    stack_.push_back(Normalize(file));
    Lexer lex(text, file);
    Status s = ParseBlock(lex, file, nullptr, 0, out);
    stack_.pop_back();
    return s;
  }

 private:
  // ParseBlock reads statements until "}" (when `parent` is set) or the end.
  Status ParseBlock(Lexer& lex, const std::string& file, const Node* parent,
                    int depth, std::vector<Node>* out) {
    for (;;) {
      Token t;
      lex.set_current(nullptr);
      if (Status s = lex.Next(&t); !s.ok()) return s;
      switch (t.kind) {
        case Tok::kEnd:
          if (parent)
            return DirectiveError(file, parent->line, parent->name,
                                  "unterminated block, missing " + Quote("}"));
          return Status::Ok();
        case Tok::kClose:
          if (parent) return Status::Ok();
          return Error(file, t.line, "unexpected " + Quote("}"));
        case Tok::kSemi:
        case Tok::kOpen:
          return Error(file, t.line, "unexpected " + Quote(t.text));
        case Tok::kWord:
          break;
      }
      Node node;
      node.name = t.text;
      node.file = file;
      node.line = t.line;
      lex.set_current(&node.name);
      if (Status s = ParseStatement(lex, file, depth, &node); !s.ok()) return s;
      if (node.name == "include") {
        if (Status s = Include(node, out); !s.ok()) return s;
      } else {
        out->push_back(std::move(node));
      }
    }
  }

  Status ParseStatement(Lexer& lex, const std::string& file, int depth,
                        Node* node) {
    for (;;) {
      Token t;
      if (Status s = lex.Next(&t); !s.ok()) return s;
      switch (t.kind) {
        case Tok::kWord:
          node->args.push_back({std::move(t.text), t.line, t.quoted});
          continue;
        case Tok::kSemi:
          return Status::Ok();
        case Tok::kOpen:
          if (depth + 1 > options_.max_block_depth)
            return DirectiveError(file, t.line, node->name,
                                  "blocks nested too deeply " + Quote("{"));
          node->block = true;
          return ParseBlock(lex, file, node, depth + 1, &node->children);
        case Tok::kClose:
          return DirectiveError(
              file, node->line, node->name,
              "missing " + Quote(";") + " before " + Quote("}"));
        case Tok::kEnd:
          return DirectiveError(
              file, node->line, node->name,
              "missing " + Quote(";") + " before end of file");
      }
    }
  }

  Status Include(const Node& node, std::vector<Node>* out) {
    auto fail = [&](const std::string& problem) {
      return DirectiveError(node.file, node.line, node.name, problem);
    };
    if (node.block) return fail("takes no block, unexpected " + Quote("{"));
    if (node.args.empty()) return fail("missing argument (takes 1)");
    if (node.args.size() > 1)
      return fail("unexpected argument " + Quote(node.args[1].text) +
                  " (takes 1)");
    const std::string& arg = node.args[0].text;
    if (arg.empty()) return fail("empty path " + Quote(arg));
    // A path is the start of every message about its file: a control byte
    // (written as \t, \n or \r) would break log lines (tests/fuzz/conf_fuzz).
    for (char c : arg) {
      if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f)
        return fail("control character in path " + Quote(arg));
    }
    std::string path = arg;
    if (arg[0] != '/') {
      std::string dir = DirName(node.file);
      if (!dir.empty()) path = dir + "/" + arg;
    }
    std::vector<std::string> files;
    if (arg.find_first_of("*?[") != std::string::npos) {
      auto matched = options_.glob(path);
      if (!matched.ok()) return fail(matched.status().message());
      files = std::move(*matched);
    } else {
      files.push_back(path);
    }
    for (const std::string& f : files) {
      std::string norm = Normalize(f);
      auto cycle = std::find(stack_.begin(), stack_.end(), norm);
      if (cycle != stack_.end()) {
        std::string chain;
        for (auto it = cycle; it != stack_.end(); ++it) chain += *it + " -> ";
        return fail("include cycle " + Quote(arg) + " (" + chain + norm + ")");
      }
      if (static_cast<int>(stack_.size()) > options_.max_include_depth)
        return fail("includes nested too deeply " + Quote(arg));
      auto text = options_.read(norm);
      if (!text.ok()) {
        Status e =
            fail("cannot read " + Quote(norm) + ": " + text.status().message());
        return Status(text.status().code(), e.message());
      }
      if (Status s = ParseText(*text, norm, out); !s.ok()) return s;
    }
    return Status::Ok();
  }

  ParseOptions options_;
  std::vector<std::string> stack_;  // files being parsed, normalized
};

}  // namespace

Result<std::vector<Node>> Parse(std::string_view text, const std::string& file,
                                const ParseOptions& options) {
  Parser p(options);
  std::vector<Node> out;
  if (Status s = p.ParseText(text, file, &out); !s.ok()) return s;
  return out;
}

Result<std::vector<Node>> ParseFile(const std::string& path,
                                    const ParseOptions& options) {
  auto text = options.read ? options.read(path) : ReadFromDisk(path);
  if (!text.ok())
    return Status(text.status().code(), "cannot read " + Quote(path) + ": " +
                                            text.status().message());
  return Parse(*text, path, options);
}

Result<ServerConfig> LoadFile(const std::string& path,
                              const ParseOptions& options) {
  auto tree = ParseFile(path, options);
  if (!tree.ok()) return tree.status();
  return Build(*tree);
}

Result<ServerConfig> LoadString(std::string_view text, const std::string& file,
                                const ParseOptions& options) {
  auto tree = Parse(text, file, options);
  if (!tree.ok()) return tree.status();
  return Build(*tree);
}

Result<ServerConfig> LoadFile(const std::string& path,
                              const ParseOptions& options,
                              const Directives& app) {
  auto tree = ParseFile(path, options);
  if (!tree.ok()) return tree.status();
  return Build(*tree, app);
}

Result<ServerConfig> LoadString(std::string_view text, const std::string& file,
                                const ParseOptions& options,
                                const Directives& app) {
  auto tree = Parse(text, file, options);
  if (!tree.ok()) return tree.status();
  return Build(*tree, app);
}

}  // namespace evsse::conf
