// Human rendering of daemon answers: aligned tables and key/value blocks. Pure functions
// of the JSON the control socket returns (docs/internals.md), tolerant of absent fields.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace smtpgov::ctl {

enum class Align { Left, Right };

class Table {
public:
    Table(std::vector<std::string> headers, std::vector<Align> align);
    void add(std::vector<std::string> row);
    bool empty() const { return rows_.empty(); }
    // Columns separated by two spaces, padded to the widest cell, no trailing blanks.
    std::string str() const;

private:
    std::vector<std::string> headers_;
    std::vector<Align> align_;
    std::vector<std::vector<std::string>> rows_;
};

std::string fixed(double v, int decimals);
// A UTC RFC 3339 time for a unix time in seconds: "2026-11-23T05:01:02Z".
std::string utc_time(int64_t unix_s);
// "3d4h", "2h5m", "4m10s", "12s".
std::string duration(int64_t seconds);

std::string render_vm_list(const nlohmann::json& vms);
std::string render_vm_show(const nlohmann::json& vm);
std::string render_status(const nlohmann::json& status);
std::string render_apply(const nlohmann::json& diff);
std::string render_pin(const nlohmann::json& pin);
// top: a header line and the busiest rows (at most max_rows, 0 = all).
std::string render_top(const nlohmann::json& vms, const std::string& header, size_t max_rows);
// "PATH: reason" for each problem ({"path","reason"}); the root path renders as "/".
std::vector<std::string> render_problems(const nlohmann::json& problems);

}  // namespace smtpgov::ctl
