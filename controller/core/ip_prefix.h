// IPv4/IPv6 addresses and prefixes as one small value type, plus "ADDR:PORT" endpoints.
#pragma once

#include <array>
#include <compare>
#include <cstdint>
#include <string>
#include <string_view>

#include "core/result.h"

namespace smtpgov {

struct IpPrefix {
    enum class Family : uint8_t { V4 = 4, V6 = 6 };

    Family family = Family::V4;
    std::array<uint8_t, 16> addr{};  // network order; IPv4 uses addr[0..3], the rest stays 0
    uint8_t len = 0;                 // prefix length, 0..32 or 0..128

    // "203.0.113.7", "203.0.113.0/24", "2001:db8::1", "2001:db8::/64". A bare address is
    // a full-length prefix. Host bits are kept as written: check host_bits_zero().
    static Result<IpPrefix> parse(std::string_view text);

    // Bare address for a full-length prefix, "addr/len" otherwise.
    std::string to_string() const;

    int max_len() const { return family == Family::V4 ? 32 : 128; }
    bool is_host() const { return len == max_len(); }
    bool host_bits_zero() const;
    IpPrefix masked() const;  // the same prefix with host bits cleared

    // True when every address of `inner` is in this prefix.
    bool contains(const IpPrefix& inner) const;
    // Prefixes are either nested or disjoint, so overlap means one contains the other.
    bool overlaps(const IpPrefix& o) const { return contains(o) || o.contains(*this); }

    // Orders by family, then address, then length: a containing prefix sorts before
    // the prefixes it contains, which the overlap sweep relies on.
    auto operator<=>(const IpPrefix&) const = default;
};

// A transport endpoint: "192.0.2.10:25" or "[2001:db8::10]:25".
struct Endpoint {
    IpPrefix addr;   // always a full-length prefix
    uint16_t port = 0;

    static Result<Endpoint> parse(std::string_view text);
    std::string to_string() const;
    bool operator==(const Endpoint&) const = default;
};

}  // namespace smtpgov
