// Directives: an application's own rows of the directive table. Build
// (conf_build.cc) checks them as it checks the library's; their values are
// parsed by the library's setters (conf_table.cc) and handed to the
// application's.
#include "evsse/conf.h"

namespace evsse::conf {

Status DirectiveError(const Node& directive, std::string_view problem) {
  return InvalidArgumentError(
      directive.file + ":" + std::to_string(directive.line) + ": directive " +
      Quote(directive.name) + ": " + std::string(problem));
}

namespace {

constexpr unsigned kAllKinds = 31;

AppDirective Row(std::string_view name, unsigned contexts, Setter setter,
                 uint64_t min, uint64_t max, AppSetter set) {
  AppDirective d;
  d.info = {name, contexts, kAllKinds, 1, 1, setter, false, false, min, max};
  d.set = std::move(set);
  return d;
}

}  // namespace

Directives& Directives::Size(std::string_view name, unsigned contexts,
                             uint64_t min, uint64_t max, size_t* to) {
  return Add(Row(name, contexts, Setter::kSize, min, max, [to](const Value& v) {
    *to = static_cast<size_t>(v.number);
    return std::string();
  }));
}

Directives& Directives::Count(std::string_view name, unsigned contexts,
                              uint64_t min, uint64_t max, size_t* to) {
  return Add(
      Row(name, contexts, Setter::kCount, min, max, [to](const Value& v) {
        *to = static_cast<size_t>(v.number);
        return std::string();
      }));
}

Directives& Directives::Duration(std::string_view name, unsigned contexts,
                                 Millis min, Millis max, Millis* to) {
  return Add(Row(name, contexts, Setter::kDuration,
                 static_cast<uint64_t>(min.count()),
                 static_cast<uint64_t>(max.count()), [to](const Value& v) {
                   *to = v.duration;
                   return std::string();
                 }));
}

Directives& Directives::Bool(std::string_view name, unsigned contexts,
                             bool* to) {
  return Add(Row(name, contexts, Setter::kBool, 0, 1, [to](const Value& v) {
    *to = v.on;
    return std::string();
  }));
}

Directives& Directives::String(std::string_view name, unsigned contexts,
                               size_t min_bytes, size_t max_bytes,
                               StringCheck check, bool secret,
                               std::string* to) {
  AppDirective d = Row(name, contexts, Setter::kString, min_bytes, max_bytes,
                       [to](const Value& v) {
                         *to = v.words.at(0);
                         return std::string();
                       });
  d.info.secret = secret;
  d.check = std::move(check);
  return Add(std::move(d));
}

Directives& Directives::Add(AppDirective directive) {
  names_.push_back(std::make_unique<std::string>(directive.info.name));
  directive.info.name = *names_.back();
  rows_.push_back(std::move(directive));
  return *this;
}

Directives& Directives::Check(unsigned contexts, BlockCheck check) {
  checks_.emplace_back(contexts, std::move(check));
  return *this;
}

const AppDirective* Directives::Find(std::string_view name) const {
  for (const AppDirective& d : rows_)
    if (d.info.name == name) return &d;
  return nullptr;
}

}  // namespace evsse::conf
