// The HTTP side of /metrics: one thread, one epoll set, every connection non-blocking.
//
// Why not prometheus-cpp's Exposer: it runs civetweb, which hands each accepted
// connection to one of a fixed number of worker threads and lets that thread wait for
// the request head. A handful of idle TCP connections from any local user then holds
// every worker and the scraper waits in the accept queue (measured with civetweb 1.15:
// 4 idle connections and 2 threads delay a scrape by the whole request timeout; 1,000
// idle connections and 32 threads by 6 s). Here a connection costs a file descriptor
// and a small buffer until it has sent a request head; the scrape is answered as soon as
// its head arrives, whatever the other connections do.
//
// Bounds (HttpServerOptions): at most max_connections connections are held; a new one
// past that closes the oldest (connections lingering after their response first, then
// those still sending a request head, then those being answered). A request head larger
// than max_request_bytes gets 431, one not complete within request_timeout_ms is closed,
// a response not taken within write_timeout_ms is dropped. After a response the server
// shuts down its side and discards what the client still sends for up to linger_ms, so
// that the response is not lost to a reset.
//
// Requests: GET or HEAD of `path` (a query string is ignored) -> 200 with render()'s
// body; any other method on `path` -> 405 (Allow: GET, HEAD); any other path -> 404; a
// malformed request line -> 400. No request changes anything: render() is the only
// callback. Every response is "Connection: close".
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <string>

#include "core/result.h"

namespace smtpgov::metrics {

struct HttpServerOptions {
    std::string listen = "127.0.0.1:9464";  // HOST:PORT, [V6]:PORT, :PORT (any); port 0 = ephemeral
    std::string path = "/metrics";
    std::string content_type = "text/plain; version=0.0.4; charset=utf-8";
    std::size_t max_connections = 128;
    std::size_t max_request_bytes = 8192;   // request line and headers
    int request_timeout_ms = 5000;          // to receive the request head, from accept
    int write_timeout_ms = 10000;           // to send the whole response
    int linger_ms = 1000;                   // discard late client input after the response
};

// The body of a 200 response, shared between connections answered from the same render.
using HttpBody = std::shared_ptr<const std::string>;

class HttpServer {
public:
    // Binds and listens, then serves on its own thread. render runs on that thread, one
    // call at a time; an exception from it becomes a 500.
    static Result<std::unique_ptr<HttpServer>> start(HttpServerOptions opts, std::function<HttpBody()> render);
    ~HttpServer();  // stop()
    HttpServer(const HttpServer&) = delete;
    HttpServer& operator=(const HttpServer&) = delete;

    void stop();  // closes every connection and joins the thread; idempotent
    int port() const { return port_; }

private:
    struct Impl;
    explicit HttpServer(std::unique_ptr<Impl> impl);
    std::unique_ptr<Impl> impl_;
    int port_ = 0;
};

}  // namespace smtpgov::metrics
