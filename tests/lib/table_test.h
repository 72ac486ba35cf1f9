// Table-driven BPF tests as gtest parameterised tests: each row (a struct with a
// `desc`) is its own test, named after its description, so ctest lists and runs
// every row as its own case.
#pragma once

#include <gtest/gtest.h>

#include <cctype>
#include <memory>
#include <ostream>
#include <string>
#include <string_view>

#include "test_datapath.h"

namespace sgt {

// A gtest name for a row: "QinQ 802.1ad + 802.1Q" -> "QinQ_802_1ad_802_1Q".
inline std::string row_name(std::string_view desc)
{
    std::string out;
    for (char c : desc) {
        if (std::isalnum(static_cast<unsigned char>(c)))
            out += c;
        else if (!out.empty() && out.back() != '_')
            out += '_';
    }
    while (!out.empty() && out.back() == '_')
        out.pop_back();
    return out;
}

// The name generator for INSTANTIATE_TEST_SUITE_P.
struct RowName {
    template <class Row>
    std::string operator()(const ::testing::TestParamInfo<Row>& info) const
    {
        return row_name(info.param.desc);
    }
};

// Rows of one table share one datapath while they run in one process, as the loop
// they replace did: their checks are deltas. ctest runs each row in its own process.
template <class Row>
class TableTest : public ::testing::TestWithParam<Row> {
public:
    static void TearDownTestSuite() { shared_.reset(); }

protected:
    static TestDatapath& dp()
    {
        if (!shared_)
            shared_ = std::make_unique<TestDatapath>();
        return *shared_;
    }

private:
    static inline std::unique_ptr<TestDatapath> shared_;
};

}  // namespace sgt
