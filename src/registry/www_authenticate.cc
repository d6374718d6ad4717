#include "registry/www_authenticate.h"

#include <cctype>

namespace ocifs {
namespace {

class Parser {
 public:
  explicit Parser(std::string_view s) : s_(s) {}

  bool AtEnd() const { return i_ >= s_.size(); }
  char Peek() const { return AtEnd() ? '\0' : s_[i_]; }
  void SkipSpace() {
    while (!AtEnd() && (s_[i_] == ' ' || s_[i_] == '\t')) ++i_;
  }
  void SkipSpaceAndCommas() {
    while (!AtEnd() && (s_[i_] == ' ' || s_[i_] == '\t' || s_[i_] == ',')) ++i_;
  }
  static bool TokenChar(char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || std::string_view("!#$%&'*+-.^_`|~").find(c) !=
                                                               std::string_view::npos;
  }
  std::string Token() {
    size_t start = i_;
    while (!AtEnd() && TokenChar(s_[i_])) ++i_;
    return std::string(s_.substr(start, i_ - start));
  }
  // A token68 or token value: token chars plus '/' and '=' padding.
  std::string Value() {
    size_t start = i_;
    while (!AtEnd() && (TokenChar(s_[i_]) || s_[i_] == '/' || s_[i_] == '=' || s_[i_] == ':')) ++i_;
    return std::string(s_.substr(start, i_ - start));
  }
  std::string Quoted() {  // at '"'
    ++i_;
    std::string out;
    while (!AtEnd() && s_[i_] != '"') {
      if (s_[i_] == '\\' && i_ + 1 < s_.size()) ++i_;
      out += s_[i_++];
    }
    if (!AtEnd()) ++i_;  // closing quote
    return out;
  }
  // True if the text at the cursor is `token *SP "="` (an auth-param), without consuming.
  bool LooksLikeParam() const {
    size_t j = i_;
    while (j < s_.size() && TokenChar(s_[j])) ++j;
    if (j == i_) return false;
    while (j < s_.size() && (s_[j] == ' ' || s_[j] == '\t')) ++j;
    return j < s_.size() && s_[j] == '=' && (j + 1 >= s_.size() || s_[j + 1] != '=');
  }
  size_t pos() const { return i_; }
  void Advance() { ++i_; }
  void Reset(size_t pos) { i_ = pos; }

 private:
  std::string_view s_;
  size_t i_ = 0;
};

std::string Lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

}  // namespace

std::vector<AuthChallenge> ParseWwwAuthenticate(std::string_view header) {
  std::vector<AuthChallenge> out;
  Parser p(header);
  while (true) {
    p.SkipSpaceAndCommas();
    if (p.AtEnd()) break;
    std::string scheme = p.Token();
    if (scheme.empty()) {
      p.Advance();  // junk; skip a character and try again
      continue;
    }
    AuthChallenge ch;
    ch.scheme = Lower(scheme);
    p.SkipSpace();
    // token68 right after the scheme ("Negotiate abc=="), then the end or a comma.
    if (!p.AtEnd() && p.Peek() != ',' && !p.LooksLikeParam()) {
      size_t before = p.pos();
      std::string t68 = p.Value();
      p.SkipSpace();
      if (!t68.empty() && (p.AtEnd() || p.Peek() == ',')) {
        ch.params["token68"] = t68;
      } else {
        p.Reset(before);
      }
    }
    // auth-params until the next challenge (a token not followed by '=').
    while (true) {
      p.SkipSpaceAndCommas();
      if (p.AtEnd() || !p.LooksLikeParam()) break;
      std::string name = Lower(p.Token());
      p.SkipSpace();
      p.Advance();  // '='
      p.SkipSpace();
      std::string value = p.Peek() == '"' ? p.Quoted() : p.Value();
      ch.params.emplace(std::move(name), std::move(value));
    }
    out.push_back(std::move(ch));
  }
  return out;
}

}  // namespace ocifs
