#include "core/auth_results.h"

#include "core/ascii.h"

namespace smtpgov::arf {
namespace {

bool space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

// The value with comments removed (nested, backslash-quoted), quoted strings kept whole
// and marked: each word is {text, was_quoted}. Words end at whitespace, ';' and '=';
// ';' and '=' are words of their own. nullopt: an unterminated comment or quote.
struct Word {
    std::string text;
    bool quoted = false;
    bool is(char c) const { return !quoted && text.size() == 1 && text[0] == c; }
};
std::optional<std::vector<Word>> words(std::string_view v) {
    std::vector<Word> out;
    std::string cur;
    bool have = false;
    auto flush = [&] {
        if (have) out.push_back({cur, false});
        cur.clear();
        have = false;
    };
    for (size_t i = 0; i < v.size(); ++i) {
        const char c = v[i];
        if (c == '(') {
            flush();
            int depth = 0;
            for (; i < v.size(); ++i) {
                if (v[i] == '\\') ++i;
                else if (v[i] == '(') ++depth;
                else if (v[i] == ')' && --depth == 0) break;
            }
            if (depth != 0) return std::nullopt;
        } else if (c == '"') {
            flush();
            std::string q;
            for (++i; i < v.size() && v[i] != '"'; ++i) {
                if (v[i] == '\\' && i + 1 < v.size()) ++i;
                q += v[i];
            }
            if (i >= v.size()) return std::nullopt;
            out.push_back({q, true});
        } else if (c == ';' || c == '=') {
            flush();
            out.push_back({std::string(1, c), false});
        } else if (space(c)) {
            flush();
        } else {
            cur += c;
            have = true;
        }
    }
    flush();
    return out;
}

}  // namespace

std::optional<AuthResults> parse_auth_results(std::string_view value) {
    auto w = words(value);
    if (!w || w->empty() || w->front().is(';') || w->front().is('=')) return std::nullopt;
    AuthResults ar;
    ar.authserv_id = ascii_lower(w->front().text);
    size_t i = 1;
    while (i < w->size() && !(*w)[i].is(';')) ++i;  // an optional version after the id
    // resinfo: ";" method ["/" version] "=" result [reason] *(ptype "." property "=" value)
    while (i < w->size()) {
        ++i;  // the ';'
        if (i >= w->size()) break;
        if (i + 1 >= w->size() || !(*w)[i + 1].is('=')) {
            if (ascii_lower((*w)[i].text) == "none" && ar.results.empty()) {
                ++i;
                continue;
            }
            return std::nullopt;
        }
        if (i + 2 >= w->size() || (*w)[i + 2].is(';')) return std::nullopt;
        AuthResults::Result r;
        r.method = ascii_lower((*w)[i].text.substr(0, (*w)[i].text.find('/')));
        r.result = ascii_lower((*w)[i + 2].text);
        i += 3;
        while (i < w->size() && !(*w)[i].is(';')) {
            if (i + 2 >= w->size() || !(*w)[i + 1].is('=') || (*w)[i + 2].is(';')) return std::nullopt;
            r.props[ascii_lower((*w)[i].text)] = (*w)[i + 2].text;
            i += 3;
        }
        ar.results.push_back(std::move(r));
    }
    return ar;
}

std::string trusted_signer(const AuthResults& ar, const std::vector<std::string>& domains) {
    for (const auto& r : ar.results) {
        if (r.method != "dkim" || r.result != "pass") continue;
        std::string d;
        if (auto it = r.props.find("header.d"); it != r.props.end()) {
            d = ascii_lower(it->second);
        } else if (auto i = r.props.find("header.i"); i != r.props.end()) {
            d = ascii_lower(i->second.substr(i->second.rfind('@') == std::string::npos ? 0 : i->second.rfind('@') + 1));
        }
        while (!d.empty() && d.back() == '.') d.pop_back();
        if (d.empty()) continue;
        for (const auto& want : domains)
            if (d == want || (d.size() > want.size() && d.ends_with(want) && d[d.size() - want.size() - 1] == '.'))
                return d;
    }
    return "";
}

}  // namespace smtpgov::arf
