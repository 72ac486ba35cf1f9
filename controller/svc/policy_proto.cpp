#include "svc/policy_proto.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>

#include "core/unique_fd.h"

namespace smtpgov::svc::policy {
namespace {

bool valid_name(std::string_view n) {
    if (n.empty() || n.size() > kMaxNameBytes) return false;
    for (char c : n)
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_')) return false;
    return true;
}

// One request's text (its lines, without the empty line that ended it).
Result<Request> parse_lines(std::string_view text) {
    Request r;
    size_t line_no = 0;
    while (!text.empty()) {
        ++line_no;
        size_t nl = text.find('\n');
        std::string_view line = text.substr(0, nl);
        text = nl == std::string_view::npos ? std::string_view{} : text.substr(nl + 1);
        if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
        const std::string where = "line " + std::to_string(line_no) + ": ";
        size_t eq = line.find('=');
        if (eq == std::string_view::npos) return Error::msg(where + "not name=value");
        std::string_view name = line.substr(0, eq), value = line.substr(eq + 1);
        if (!valid_name(name)) return Error::msg(where + "bad attribute name (a-z 0-9 _, at most 64)");
        if (value.find('\0') != std::string_view::npos) return Error::msg(where + "NUL in the value");
        if (r.get(name)) return Error::msg(where + "attribute " + std::string(name) + " given twice");
        if (r.attrs.size() >= kMaxAttributes)
            return Error::msg("more than " + std::to_string(kMaxAttributes) + " attributes");
        r.attrs.emplace_back(std::string(name), std::string(value));
    }
    if (r.attrs.empty()) return Error::msg("empty request");
    return r;
}

// The end of the first request in buf: the offset just past its empty line, or npos.
size_t request_end(std::string_view buf, size_t& body_len) {
    if (buf.starts_with("\n")) return body_len = 0, 1;
    if (buf.starts_with("\r\n")) return body_len = 0, 2;
    for (size_t i = buf.find('\n'); i != std::string_view::npos; i = buf.find('\n', i + 1)) {
        size_t j = i + 1;
        if (j < buf.size() && buf[j] == '\r') ++j;
        if (j < buf.size() && buf[j] == '\n') {
            body_len = i;
            return j + 1;
        }
    }
    return std::string_view::npos;
}

Result<uint16_t> port_of(const std::string* v) {
    if (!v) return Error::msg("client_port missing");
    unsigned p = 0;
    auto [end, ec] = std::from_chars(v->data(), v->data() + v->size(), p);
    if (v->empty() || ec != std::errc() || end != v->data() + v->size() || p == 0 || p > 65535)
        return Error::msg("client_port \"" + v->substr(0, 16) + "\" is not a port (1..65535)");
    return static_cast<uint16_t>(p);
}

Result<Endpoint> client_of(const Request& r) {
    const std::string* a = r.get("client_address");
    if (!a) return Error::msg("client_address missing");
    auto addr = IpPrefix::parse(*a);
    if (!addr || a->find('/') != std::string::npos)
        return Error::msg("client_address \"" + a->substr(0, 64) + "\" is not an IP address");
    auto port = port_of(r.get("client_port"));
    if (!port) return port.error();
    return Endpoint{*addr, *port};
}

bool is_report(std::string_view request) { return request == "smtpgov_report" || request == "smtpgov_verdict"; }

bool token_char(char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
           c == '_' || c == '~' || c == '+' || c == '/';
}

}  // namespace

Result<std::string> read_token_file(const std::string& path) {
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK));  // (a FIFO must not hang us)
    if (!fd) return Error::from_errno(path);
    struct stat st {};  // of what was opened, not of what the path names by now
    if (::fstat(fd.get(), &st) != 0) return Error::from_errno(path);
    if (!S_ISREG(st.st_mode)) return Error::msg(path + ": not a regular file");
    if (st.st_mode & S_IROTH)
        return Error::msg(path + ": readable by every user, so the token is no secret (chmod o-r, and let only the " +
                          "reporter's group read it)");
    std::string t(kMaxTokenBytes + 3, '\0');  // a token, "\r\n" and one byte to tell a longer file
    size_t got = 0;
    for (ssize_t n; got < t.size() && (n = ::read(fd.get(), t.data() + got, t.size() - got)) != 0;) {
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return Error::from_errno(path);
        got += static_cast<size_t>(n);
    }
    t.resize(got);
    if (t.ends_with("\n")) t.pop_back();
    if (t.ends_with("\r")) t.pop_back();
    if (t.size() < kMinTokenBytes || t.size() > kMaxTokenBytes)
        return Error::msg(path + ": a token is one line of " + std::to_string(kMinTokenBytes) + " to " +
                          std::to_string(kMaxTokenBytes) + " characters, this is " + std::to_string(t.size()));
    for (char c : t)
        if (!token_char(c)) return Error::msg(path + ": a token is A-Z a-z 0-9 - . _ ~ + / only (openssl rand -hex 32)");
    return t;
}

bool authorised(const Request& r, std::string_view token) {
    if (token.empty()) return true;
    const std::string* req = r.get("request");
    if (!req || !is_report(*req)) return true;
    const std::string* given = r.get("token");
    if (!given) return false;
    // every byte of the longer string is looked at, whatever the first difference
    unsigned diff = given->size() == token.size() ? 0 : 1;
    const size_t n = std::max(given->size(), token.size());
    for (size_t i = 0; i < n; ++i) {
        const unsigned char a = i < given->size() ? static_cast<unsigned char>((*given)[i]) : 0;
        const unsigned char b = i < token.size() ? static_cast<unsigned char>(token[i]) : 0;
        diff |= a ^ b;
    }
    return diff == 0;
}

const std::string* Request::get(std::string_view name) const {
    for (const auto& [n, v] : attrs)
        if (n == name) return &v;
    return nullptr;
}

std::optional<Result<Request>> Reader::next() {
    size_t body = 0;
    const size_t end = request_end(buf_, body);
    if (end == std::string::npos) {
        if (buf_.size() > kMaxRequestBytes)
            return Result<Request>(Error::msg("request larger than " + std::to_string(kMaxRequestBytes) + " bytes"));
        return std::nullopt;
    }
    if (end > kMaxRequestBytes + 2)
        return Result<Request>(Error::msg("request larger than " + std::to_string(kMaxRequestBytes) + " bytes"));
    auto r = parse_lines(std::string_view(buf_).substr(0, body));
    buf_.erase(0, end);
    return r;
}

Query interpret(const Request& r) {
    Query q;
    const std::string* req = r.get("request");
    q.request = req ? *req : "";
    if (q.request == "smtpd_access_policy") q.kind = Query::Kind::Access;
    else if (is_report(q.request)) q.kind = Query::Kind::Report;
    else return q;
    auto client = client_of(r);
    if (!client) {
        q.problem = client.error().message;
        return q;
    }
    q.client = *client;
    if (q.kind != Query::Kind::Report) return q;
    const std::string* v = r.get("verdict");
    if (!v) q.problem = "verdict missing (spam or ham)";
    else if (*v != "spam" && *v != "ham") q.problem = "verdict \"" + v->substr(0, 16) + "\" is not spam or ham";
    q.spam = v && *v == "spam";
    return q;
}

std::string answer(std::string_view action) {
    std::string a(action);
    for (char& c : a)
        if (c == '\n' || c == '\r' || c == '\0') c = ' ';
    return "action=" + a + "\n\n";
}

std::string filter_action(const Endpoint& original) {
    return "FILTER smtp:[" + original.addr.to_string() + "]:" + std::to_string(original.port);
}

}  // namespace smtpgov::svc::policy
