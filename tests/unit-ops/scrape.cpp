#include "scrape.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <sstream>
#include <stdexcept>
#include <utility>
#include <vector>

namespace smtpgov::test {

std::optional<std::string> http_get(int port, const std::string& path) {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return std::nullopt;
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(uint16_t(port));
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    timeval tv{5, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) {
        ::close(fd);
        return std::nullopt;
    }
    std::string req = "GET " + path + " HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    if (::send(fd, req.data(), req.size(), MSG_NOSIGNAL) != ssize_t(req.size())) {
        ::close(fd);
        return std::nullopt;
    }
    std::string resp;
    char buf[8192];
    for (;;) {
        ssize_t n = ::recv(fd, buf, sizeof buf, 0);
        if (n < 0) {
            ::close(fd);
            return std::nullopt;
        }
        if (n == 0) break;
        resp.append(buf, size_t(n));
    }
    ::close(fd);
    auto hdr_end = resp.find("\r\n\r\n");
    if (resp.rfind("HTTP/1.", 0) != 0 || hdr_end == std::string::npos) return std::nullopt;
    if (resp.find(" 200 ") > resp.find("\r\n")) return std::nullopt;
    return resp.substr(hdr_end + 4);
}

HttpResponse http_raw(int port, const std::string& request, int timeout_ms) {
    HttpResponse r;
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return r;
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(uint16_t(port));
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    timeval tv{timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    std::string resp;
    if (::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0 &&
        ::send(fd, request.data(), request.size(), MSG_NOSIGNAL) == ssize_t(request.size())) {
        char buf[8192];
        for (ssize_t n; (n = ::recv(fd, buf, sizeof buf, 0)) > 0;) resp.append(buf, size_t(n));
    }
    ::close(fd);
    auto hdr_end = resp.find("\r\n\r\n");
    if (resp.rfind("HTTP/1.", 0) != 0 || hdr_end == std::string::npos) return r;
    r.head = resp.substr(0, hdr_end + 2);
    r.body = resp.substr(hdr_end + 4);
    r.status = std::atoi(resp.c_str() + resp.find(' ') + 1);
    return r;
}

double Exposition::at(const std::string& key) const {
    auto it = samples.find(key);
    if (it == samples.end()) throw std::out_of_range("no sample " + key);
    return it->second;
}

std::size_t Exposition::count(const std::string& name) const {
    return size_t(std::count_if(samples.begin(), samples.end(), [&](const auto& kv) {
        return kv.first == name || kv.first.rfind(name + "{", 0) == 0;
    }));
}

namespace {

// Parses `a="x",b="y"` (values may contain escaped quotes) into sorted pairs.
std::vector<std::pair<std::string, std::string>> parse_labels(const std::string& s) {
    std::vector<std::pair<std::string, std::string>> out;
    size_t i = 0;
    while (i < s.size()) {
        size_t eq = s.find('=', i);
        std::string name = s.substr(i, eq - i);
        std::string value;
        size_t j = eq + 2;  // skip ="
        for (; j < s.size() && s[j] != '"'; ++j) {
            if (s[j] == '\\' && j + 1 < s.size()) ++j;
            value += s[j];
        }
        out.emplace_back(name, value);
        i = j + 1;
        if (i < s.size() && s[i] == ',') ++i;
    }
    std::sort(out.begin(), out.end());
    return out;
}

}  // namespace

Exposition parse_exposition(const std::string& text) {
    Exposition e;
    std::istringstream in(text);
    std::string line;
    while (std::getline(in, line)) {
        if (line.empty()) continue;
        if (line.rfind("# TYPE ", 0) == 0) {
            std::istringstream t(line.substr(7));
            std::string name, type;
            t >> name >> type;
            e.types[name] = type;
            continue;
        }
        if (line[0] == '#') continue;
        std::string key;
        std::string rest;
        auto brace = line.find('{');
        auto space = line.find(' ');
        if (brace != std::string::npos && brace < space) {
            auto close = line.rfind('}');
            key = line.substr(0, brace) + "{";
            bool first = true;
            for (auto& [n, v] : parse_labels(line.substr(brace + 1, close - brace - 1))) {
                key += (first ? "" : ",") + n + "=\"" + v + "\"";
                first = false;
            }
            key += "}";
            rest = line.substr(close + 1);
        } else {
            key = line.substr(0, space);
            rest = line.substr(space);
        }
        std::istringstream v(rest);
        std::string value;
        v >> value;
        e.samples[key] = std::stod(value);
    }
    return e;
}

}  // namespace smtpgov::test
