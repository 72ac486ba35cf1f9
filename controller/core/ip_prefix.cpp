#include "core/ip_prefix.h"

#include <arpa/inet.h>

#include <charconv>

namespace smtpgov {
namespace {

// Parses a decimal in [lo, hi] with no sign, no leading zeros and no trailing junk.
bool parse_decimal(std::string_view s, unsigned lo, unsigned hi, unsigned& out) {
    if (s.empty() || s.size() > 5 || (s.size() > 1 && s[0] == '0')) return false;
    auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
    return ec == std::errc() && end == s.data() + s.size() && out >= lo && out <= hi;
}

bool parse_address(std::string_view text, IpPrefix& p) {
    std::string s(text);  // inet_pton needs a NUL-terminated string
    if (s.find(':') != std::string::npos) {
        p.family = IpPrefix::Family::V6;
        return inet_pton(AF_INET6, s.c_str(), p.addr.data()) == 1;
    }
    p.family = IpPrefix::Family::V4;
    return inet_pton(AF_INET, s.c_str(), p.addr.data()) == 1;
}

}  // namespace

Result<IpPrefix> IpPrefix::parse(std::string_view text) {
    IpPrefix p;
    auto slash = text.find('/');
    if (!parse_address(text.substr(0, slash), p))
        return Error::msg("not an IPv4 or IPv6 address: \"" + std::string(text.substr(0, slash)) + "\"");
    p.len = static_cast<uint8_t>(p.max_len());
    if (slash != std::string_view::npos) {
        unsigned len = 0;
        if (!parse_decimal(text.substr(slash + 1), 0, static_cast<unsigned>(p.max_len()), len))
            return Error::msg("bad prefix length \"" + std::string(text.substr(slash + 1)) + "\" (0.." +
                              std::to_string(p.max_len()) + ")");
        p.len = static_cast<uint8_t>(len);
    }
    return p;
}

std::string IpPrefix::to_string() const {
    char buf[INET6_ADDRSTRLEN] = {};
    inet_ntop(family == Family::V4 ? AF_INET : AF_INET6, addr.data(), buf, sizeof buf);
    std::string s(buf);
    if (!is_host()) s += "/" + std::to_string(len);
    return s;
}

IpPrefix IpPrefix::masked() const {
    IpPrefix m = *this;
    for (int bit = len; bit < 128; ++bit) m.addr[bit / 8] &= static_cast<uint8_t>(~(0x80u >> (bit % 8)));
    return m;
}

bool IpPrefix::host_bits_zero() const { return masked().addr == addr; }

bool IpPrefix::contains(const IpPrefix& inner) const {
    if (family != inner.family || inner.len < len) return false;
    IpPrefix probe = inner;
    probe.len = len;
    return probe.masked().addr == masked().addr;
}

Result<Endpoint> Endpoint::parse(std::string_view text) {
    std::string_view host, port;
    if (!text.empty() && text[0] == '[') {
        auto close = text.find(']');
        if (close == std::string_view::npos) return Error::msg("missing ']' after the IPv6 address");
        host = text.substr(1, close - 1);
        if (close + 1 >= text.size() || text[close + 1] != ':') return Error::msg("missing port (\"[IPv6]:PORT\")");
        port = text.substr(close + 2);
        if (host.find(':') == std::string_view::npos) return Error::msg("brackets are for IPv6 addresses only");
    } else {
        auto colon = text.rfind(':');
        if (colon == std::string_view::npos) return Error::msg("missing port (\"IPv4:PORT\" or \"[IPv6]:PORT\")");
        host = text.substr(0, colon);
        port = text.substr(colon + 1);
        if (host.find(':') != std::string_view::npos) return Error::msg("an IPv6 address must be written \"[IPv6]:PORT\"");
    }
    if (port.empty()) return Error::msg("missing port");
    Endpoint e;
    unsigned p = 0;
    if (port == "0") return Error::msg("port 0 is not a valid port");
    if (!parse_decimal(port, 1, 65535, p)) return Error::msg("bad port \"" + std::string(port) + "\" (1..65535)");
    e.port = static_cast<uint16_t>(p);
    if (host.find('/') != std::string_view::npos || !parse_address(host, e.addr))
        return Error::msg("bad host \"" + std::string(host) + "\": not an IPv4 or IPv6 address");
    e.addr.len = static_cast<uint8_t>(e.addr.max_len());
    return e;
}

std::string Endpoint::to_string() const {
    std::string host = addr.to_string();
    return addr.family == IpPrefix::Family::V6 ? "[" + host + "]:" + std::to_string(port)
                                               : host + ":" + std::to_string(port);
}

}  // namespace smtpgov
