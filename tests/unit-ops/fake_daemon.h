// smtpgovctl's command handlers against a fake daemon: the answers it gives in order
// (none left: "cannot reach smtpgovd"), the requests it was sent, the lines a stream
// delivers; and one command line run to its exit code and output.
#pragma once

#include <cerrno>
#include <deque>
#include <sstream>
#include <string>
#include <vector>

#include "args.h"
#include "commands.h"

namespace smtpgov::ctl::testing {

class FakeDaemon : public Transport {
public:
    std::deque<nlohmann::json> answers;
    std::vector<nlohmann::json> requests;
    std::vector<nlohmann::json> stream_lines;

    Result<nlohmann::json> call(const nlohmann::json& req) override {
        requests.push_back(req);
        if (answers.empty()) return Error::from_errno("cannot reach smtpgovd at /fake", ECONNREFUSED);
        nlohmann::json a = answers.front();
        answers.pop_front();
        return a;
    }
    Result<nlohmann::json> stream(const nlohmann::json& req,
                                  const std::function<bool(const nlohmann::json&)>& on_line) override {
        requests.push_back(req);
        for (const auto& l : stream_lines)
            if (!on_line(l)) break;
        return nlohmann::json{{"ok", true}, {"stream", true}};
    }
};

struct CtlRun {
    int code;
    std::string out, err;
};

inline CtlRun run_cmd(FakeDaemon& d, std::vector<std::string> argv) {
    std::ostringstream out, err;
    int code = run(parse_args(argv), d, out, err);
    return {code, out.str(), err.str()};
}

}  // namespace smtpgov::ctl::testing
