// Test helpers: fetch /metrics over HTTP from 127.0.0.1 and parse the text exposition.
#pragma once

#include <map>
#include <optional>
#include <string>

namespace smtpgov::test {

// GET http://127.0.0.1:<port><path>; returns the body, or nullopt when the request failed.
std::optional<std::string> http_get(int port, const std::string& path = "/metrics");

// Sends raw bytes to 127.0.0.1:<port> and reads the answer until the server closes.
struct HttpResponse {
    int status = 0;          // 0: no parsable response
    std::string head;        // status line and headers
    std::string body;
};
HttpResponse http_raw(int port, const std::string& request, int timeout_ms = 5000);

// Samples keyed as name{a="1",b="2"} with labels sorted by name ("name" when unlabelled).
struct Exposition {
    std::map<std::string, double> samples;
    std::map<std::string, std::string> types;  // family name -> counter|gauge|histogram|...

    bool has(const std::string& key) const { return samples.count(key) != 0; }
    double at(const std::string& key) const;
    // Number of samples of one metric name (any labels).
    std::size_t count(const std::string& name) const;
};

Exposition parse_exposition(const std::string& text);

}  // namespace smtpgov::test
