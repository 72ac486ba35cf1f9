#include <gtest/gtest.h>

#include "core/ip_prefix.h"

using smtpgov::Endpoint;
using smtpgov::IpPrefix;

namespace {

IpPrefix P(const char* s) {
    auto r = IpPrefix::parse(s);
    EXPECT_TRUE(r.ok()) << s;
    return r.ok() ? r.value() : IpPrefix{};
}

}  // namespace

TEST(IpPrefix, ParsesAndFormats) {
    EXPECT_EQ(P("203.0.113.7").to_string(), "203.0.113.7");
    EXPECT_EQ(P("203.0.113.7/32").to_string(), "203.0.113.7");
    EXPECT_EQ(P("10.0.0.0/8").to_string(), "10.0.0.0/8");
    EXPECT_EQ(P("2001:DB8::/64").to_string(), "2001:db8::/64");
    EXPECT_EQ(P("::/0").to_string(), "::/0");
    EXPECT_EQ(P("2001:db8::1").len, 128);
    EXPECT_EQ(P("2001:db8::1").family, IpPrefix::Family::V6);
}

TEST(IpPrefix, RejectsGarbage) {
    for (const char* bad : {"", "1.2.3", "1.2.3.4.5", "256.1.1.1", "01.2.3.4", "1.2.3.4/33", "1.2.3.4/", "1.2.3.4/-1",
                            "1.2.3.4/08", "2001:db8::/129", "2001:db8:::1", "host.example", "1.2.3.4 "})
        EXPECT_FALSE(IpPrefix::parse(bad).ok()) << bad;
}

TEST(IpPrefix, HostBitsAndMask) {
    EXPECT_TRUE(P("10.0.0.0/8").host_bits_zero());
    EXPECT_FALSE(P("10.0.0.1/8").host_bits_zero());
    EXPECT_EQ(P("10.1.2.3/8").masked().to_string(), "10.0.0.0/8");
    EXPECT_FALSE(P("2001:db8::1/64").host_bits_zero());
    EXPECT_TRUE(P("2001:db8::/127").host_bits_zero());
}

TEST(IpPrefix, ContainsAndOverlaps) {
    EXPECT_TRUE(P("10.0.0.0/8").contains(P("10.2.3.4")));
    EXPECT_FALSE(P("10.2.3.4").contains(P("10.0.0.0/8")));
    EXPECT_TRUE(P("10.2.3.4").overlaps(P("10.0.0.0/8")));
    EXPECT_FALSE(P("10.0.0.0/9").overlaps(P("10.128.0.0/9")));
    EXPECT_TRUE(P("0.0.0.0/0").contains(P("192.0.2.1")));
    EXPECT_FALSE(P("::/0").contains(P("192.0.2.1")));  // families never overlap
    EXPECT_TRUE(P("2001:db8::/32").contains(P("2001:db8:1::/48")));
    EXPECT_FALSE(P("2001:db8::/48").overlaps(P("2001:db8:1::/48")));
}

TEST(Endpoint, ParsesBothFamilies) {
    auto v4 = Endpoint::parse("192.0.2.10:25");
    ASSERT_TRUE(v4.ok());
    EXPECT_EQ(v4->port, 25);
    EXPECT_EQ(v4->to_string(), "192.0.2.10:25");
    auto v6 = Endpoint::parse("[2001:db8::10]:2525");
    ASSERT_TRUE(v6.ok());
    EXPECT_EQ(v6->to_string(), "[2001:db8::10]:2525");
}

TEST(Endpoint, RejectsBadOnes) {
    for (const char* bad : {"192.0.2.10", "192.0.2.10:", "192.0.2.10:0", "192.0.2.10:65536", "2001:db8::10:25",
                            "[2001:db8::10]", "[2001:db8::10]25", "[192.0.2.1]:25", "mail.example:25", ":25",
                            "192.0.2.0/24:25", "192.0.2.10:+25"})
        EXPECT_FALSE(Endpoint::parse(bad).ok()) << bad;
}
