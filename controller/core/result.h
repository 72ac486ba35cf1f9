// Errors as values: a Result<T> holds a T or an Error (errno + context).
#pragma once

#include <cerrno>
#include <cstring>
#include <string>
#include <utility>
#include <variant>

namespace smtpgov {

struct Error {
    int errnum = 0;        // errno-style code, 0 when not from a syscall
    std::string message;   // "attach xdp to vnet3: Operation not supported"

    static Error from_errno(std::string context, int err = errno) {
        return Error{err, std::move(context) + ": " + std::strerror(err < 0 ? -err : err)};
    }
    static Error msg(std::string text) { return Error{0, std::move(text)}; }
};

template <typename T>
class [[nodiscard]] Result {
public:
    Result(T value) : v_(std::move(value)) {}
    Result(Error err) : v_(std::move(err)) {}

    bool ok() const { return std::holds_alternative<T>(v_); }
    explicit operator bool() const { return ok(); }
    T& value() & { return std::get<T>(v_); }
    const T& value() const& { return std::get<T>(v_); }
    T&& value() && { return std::get<T>(std::move(v_)); }
    T& operator*() & { return value(); }
    T* operator->() { return &value(); }
    const T* operator->() const { return &value(); }
    const Error& error() const { return std::get<Error>(v_); }

private:
    std::variant<T, Error> v_;
};

struct Ok {};
using Status = Result<Ok>;
inline Status ok_status() { return Ok{}; }

}  // namespace smtpgov
