// Base64 (RFC 4648, with padding) for keys and values on etcd's JSON gateway.
#include "svc/etcd.h"

#include <string>

namespace smtpgov::etcd {
namespace {
constexpr char kB64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
}  // namespace

std::string base64_encode(const std::string& s) {
    std::string out;
    out.reserve((s.size() + 2) / 3 * 4);
    size_t i = 0;
    for (; i + 2 < s.size(); i += 3) {
        uint32_t v = uint32_t(uint8_t(s[i])) << 16 | uint32_t(uint8_t(s[i + 1])) << 8 | uint8_t(s[i + 2]);
        for (int k = 18; k >= 0; k -= 6) out += kB64[(v >> k) & 63];
    }
    if (i + 1 == s.size()) {
        uint32_t v = uint32_t(uint8_t(s[i])) << 16;
        out += kB64[v >> 18 & 63];
        out += kB64[v >> 12 & 63];
        out += "==";
    } else if (i + 2 == s.size()) {
        uint32_t v = uint32_t(uint8_t(s[i])) << 16 | uint32_t(uint8_t(s[i + 1])) << 8;
        out += kB64[v >> 18 & 63];
        out += kB64[v >> 12 & 63];
        out += kB64[v >> 6 & 63];
        out += '=';
    }
    return out;
}

Result<std::string> base64_decode(const std::string& s) {
    std::string out;
    uint32_t acc = 0;
    int bits = 0;
    size_t pad = 0;
    for (char c : s) {
        if (c == '=') {
            ++pad;
            continue;
        }
        if (pad) return Error::msg("base64: data after padding");
        const char* at = std::char_traits<char>::find(kB64, 64, c);
        if (!at) return Error::msg("base64: invalid character");
        acc = acc << 6 | uint32_t(at - kB64);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out += char(acc >> bits & 0xff);
        }
    }
    if (pad > 2) return Error::msg("base64: too much padding");
    return out;
}

}  // namespace smtpgov::etcd
