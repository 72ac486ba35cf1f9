#include "core/json_strict.h"

#include <set>
#include <vector>

namespace smtpgov {
namespace {

// JSON Pointer escaping (RFC 6901)
std::string escape(const std::string& key) {
    std::string out;
    for (char c : key) out += c == '~' ? "~0" : c == '/' ? "~1" : std::string(1, c);
    return out;
}

// Follows the parse: one entry per open object or array, with the keys seen so far.
struct Scope {
    bool object = false;
    std::set<std::string> keys;
    std::string name;  // this container's key or index in its parent
    size_t next_index = 0;
};

std::string path_of(const std::vector<Scope>& stack) {
    std::string p;
    for (size_t i = 1; i < stack.size(); ++i) p += "/" + escape(stack[i].name);
    return p.empty() ? "/" : p;
}

}  // namespace

Result<nlohmann::json> parse_json_strict(std::string_view text) {
    using nlohmann::json;
    std::vector<Scope> stack;
    std::string pending_key, duplicate;
    auto child_name = [&]() -> std::string {
        if (stack.empty()) return "";
        if (stack.back().object) return pending_key;
        return std::to_string(stack.back().next_index++);
    };
    json::parser_callback_t cb = [&](int, json::parse_event_t ev, json& parsed) {
        switch (ev) {
        case json::parse_event_t::object_start:
        case json::parse_event_t::array_start: {
            Scope s;
            s.object = ev == json::parse_event_t::object_start;
            s.name = child_name();
            stack.push_back(std::move(s));
            break;
        }
        case json::parse_event_t::key:
            pending_key = parsed.get<std::string>();
            if (!stack.back().keys.insert(pending_key).second && duplicate.empty())
                duplicate = "duplicate key \"" + pending_key + "\" at " + path_of(stack);
            break;
        case json::parse_event_t::value:  // every value, containers too (after their end)
            if (!stack.empty() && !stack.back().object) ++stack.back().next_index;
            break;
        case json::parse_event_t::object_end:
        case json::parse_event_t::array_end:
            stack.pop_back();
            break;
        }
        return true;
    };
    json doc;
    try {
        doc = json::parse(text, cb);
    } catch (const json::parse_error& e) {
        return Error{EINVAL, "invalid JSON at byte " + std::to_string(e.byte) + ": " + e.what()};
    } catch (const json::exception& e) {  // e.g. a number out of range (1e400)
        return Error{EINVAL, std::string("invalid JSON: ") + e.what()};
    }
    if (!duplicate.empty()) return Error{EINVAL, duplicate};
    return doc;
}

}  // namespace smtpgov
