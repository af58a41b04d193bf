#define BOOST_TEST_MODULE core
#include <boost/test/unit_test.hpp>

#include "tern/core/error.hpp"
#include "tern/core/format.hpp"
#include "tern/core/parameter.hpp"
#include "tern/core/state.hpp"
#include "testing/helpers.hpp"

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <random>

using namespace tern;
using tern::testing::messageContains;

BOOST_AUTO_TEST_CASE(shape_size_filters_groups) {
    Shape s{32, 1, 5, 5};
    BOOST_TEST(s.size() == 800);
    BOOST_TEST(s.filters() == 32);
    BOOST_TEST(s.groups(Granularity::PerTensor) == 1);
    BOOST_TEST(s.groups(Granularity::PerFilter) == 32);
    BOOST_TEST(s.str() == "[32, 1, 5, 5]");
    BOOST_TEST(Shape{}.size() == 1);
}

BOOST_AUTO_TEST_CASE(granularity_names_round_trip) {
    for (auto g : {Granularity::PerTensor, Granularity::PerFilter})
        BOOST_TEST((parseGranularity(granularityName(g)) == g));
    BOOST_CHECK_EXCEPTION(parseGranularity("row"), std::invalid_argument,
                          messageContains("known: tensor, filter"));
}

BOOST_AUTO_TEST_CASE(checks_name_field_and_value) {
    BOOST_CHECK_EXCEPTION(requirePositive(-0.5, "AdmmSettings::validate()", "rho"),
                          std::invalid_argument, messageContains("rho must be > 0 (got -0.5)"));
    BOOST_CHECK_EXCEPTION(requireSameSize(10, 9, "Projection::project()", "v", "z"),
                          std::invalid_argument, messageContains("v has 10 elements, z has 9"));
    Vector v = Vector::Ones(4);
    v[2] = std::numeric_limits<float>::quiet_NaN();
    BOOST_CHECK_EXCEPTION(requireFinite(v, "f()", "v"), std::invalid_argument,
                          messageContains("index 2"));
    BOOST_CHECK_NO_THROW(requireInRange(0.5, 0, 1, "f()", "x"));
    BOOST_CHECK_THROW(requireInRange(1.5, 0, 1, "f()", "x"), std::invalid_argument);
}

BOOST_AUTO_TEST_CASE(parameter_set_addresses_stay_valid) {
    ParameterSet ps;
    ParameterBlock& a = ps.add("a", Shape{3}, true);
    float* data = a.value.data();
    for (int i = 0; i < 100; ++i) ps.add("b" + std::to_string(i), Shape{2, 2}, false);
    BOOST_TEST(&ps.at("a") == &a);
    BOOST_TEST(ps.at("a").value.data() == data);
    BOOST_TEST(ps.constrained().size() == 1u);
    BOOST_TEST(ps.numel() == 3 + 100 * 4);
    BOOST_CHECK_EXCEPTION(ps.at("zz"), std::out_of_range, messageContains("no block 'zz'"));
    BOOST_CHECK_THROW(ps.add("a", Shape{1}, false), std::invalid_argument);
}

BOOST_AUTO_TEST_CASE(memory_state_round_trip_and_errors) {
    MemoryState st;
    Vector v = testing::randomVector(6, 3);
    st.write("optim/U/w", v, Shape{2, 3});
    st.writeInts("order", {3, 1, 2});
    st.attr("optim", "rho", 0.25);
    st.attr("optim", "k", 7);
    st.attr("optim", "method", "admm");
    BOOST_TEST(st.has("optim/U/w"));
    BOOST_TEST((st.read("optim/U/w", Shape{2, 3}) == v));
    BOOST_TEST((st.readInts("order") == std::vector<std::int64_t>{3, 1, 2}));
    BOOST_TEST(st.attrDouble("optim", "rho") == 0.25);
    BOOST_TEST(st.attrInt("optim", "k") == 7);
    BOOST_TEST(st.attrString("optim", "method") == "admm");
    BOOST_CHECK_EXCEPTION(st.read("optim/U/w", Shape{3, 2}), std::invalid_argument,
                          messageContains("expected [3, 2]"));
    BOOST_CHECK_THROW(st.read("nope", Shape{1}), std::out_of_range);
    BOOST_CHECK_THROW(st.attrInt("optim", "method"), std::invalid_argument);
}

BOOST_AUTO_TEST_CASE(format_duration_minutes_hours_and_bad_input) {
    BOOST_TEST(formatDuration(0) == "0m00s");
    BOOST_TEST(formatDuration(65.4) == "1m05s");
    BOOST_TEST(formatDuration(3599.4) == "59m59s");
    BOOST_TEST(formatDuration(3600) == "1h00m");
    BOOST_TEST(formatDuration(4020) == "1h07m");
    BOOST_TEST(formatDuration(-1) == "?");
    BOOST_TEST(formatDuration(std::numeric_limits<double>::quiet_NaN()) == "?");
    BOOST_TEST(formatDuration(std::numeric_limits<double>::infinity()) == "?");
}

namespace {

/// The shortest "%.*g" text (1 to 17 significant digits) that reads back to `x`: a bound on the
/// length formatShortest() may take.
std::string shortestPrintf(double x) {
    char buf[64];
    for (int digits = 1;; ++digits) {
        std::snprintf(buf, sizeof buf, "%.*g", digits, x);
        if (std::strtod(buf, nullptr) == x || digits == 17) return buf;
    }
}

template <class T>
T fromBits(std::uint64_t bits) {
    T x;
    if constexpr (sizeof(T) == 4) {
        const auto b = static_cast<std::uint32_t>(bits);
        std::memcpy(&x, &b, 4);
    } else {
        std::memcpy(&x, &bits, 8);
    }
    return x;
}

}  // namespace

BOOST_AUTO_TEST_CASE(format_shortest_edge_cases) {
    const double inf = std::numeric_limits<double>::infinity();
    BOOST_TEST(formatShortest(0.1) == "0.1");
    BOOST_TEST(formatShortest(0.05) == "0.05");
    BOOST_TEST(formatShortest(5e-4) == "5e-04");  // shorter than 0.0005
    BOOST_TEST(formatShortest(0.001) == "0.001");  // a tie: fixed
    BOOST_TEST(formatShortest(1e-7) == "1e-07");
    BOOST_TEST(formatShortest(0.1 + 0.2) == "0.30000000000000004");
    BOOST_TEST(formatShortest(100.0) == "100");
    BOOST_TEST(formatShortest(60000.0) == "60000");
    BOOST_TEST(formatShortest(1e20) == "1e+20");
    BOOST_TEST(formatShortest(-2.5) == "-2.5");
    BOOST_TEST(formatShortest(0.0) == "0");
    BOOST_TEST(formatShortest(-0.0) == "-0");
    BOOST_TEST(formatShortest(std::numeric_limits<double>::denorm_min()) == "5e-324");
    BOOST_TEST(formatShortest(std::numeric_limits<double>::max()) == "1.7976931348623157e+308");
    BOOST_TEST(formatShortest(std::numeric_limits<double>::lowest()) == "-1.7976931348623157e+308");
    BOOST_TEST(formatShortest(std::numeric_limits<double>::quiet_NaN()) == "nan");
    BOOST_TEST(formatShortest(-std::numeric_limits<double>::quiet_NaN()) == "nan");
    BOOST_TEST(formatShortest(inf) == "inf");
    BOOST_TEST(formatShortest(-inf) == "-inf");
    BOOST_TEST(std::isnan(std::strtod(formatShortest(std::nan("")).c_str(), nullptr)));
    BOOST_TEST(std::strtod(formatShortest(-inf).c_str(), nullptr) == -inf);

    // floats: shortest for the float, not for its double value
    BOOST_TEST(formatShortest(0.3f) == "0.3");
    BOOST_TEST(formatShortest(0.1f) == "0.1");
    BOOST_TEST(formatShortest(static_cast<double>(0.3f)) == "0.30000001192092896");
    BOOST_TEST(formatShortest(0.0f) == "0");
    BOOST_TEST(formatShortest(std::numeric_limits<float>::max()) == "3.4028235e+38");
    BOOST_TEST(formatShortest(std::numeric_limits<float>::denorm_min()) == "1e-45");
    BOOST_TEST(formatShortest(std::numeric_limits<float>::quiet_NaN()) == "nan");
    BOOST_TEST(formatShortest(-std::numeric_limits<float>::infinity()) == "-inf");
}

BOOST_AUTO_TEST_CASE(parse_whole_numbers) {
    BOOST_TEST(*parseWholeNumber("0.3") == 0.3);
    BOOST_TEST(*parseWholeNumber("5e-04") == 5e-4);
    BOOST_TEST(*parseWholeNumber("-2") == -2.0);
    BOOST_TEST(std::isnan(*parseWholeNumber("nan")));  // callers that need finite check it
    for (const char* bad : {"", " 1", "1 ", "+1", "3x", "0x10", "1e999", ","})
        BOOST_TEST(!parseWholeNumber(bad).has_value(), "'" << bad << "'");
    BOOST_TEST(*parseWholeInteger("28") == 28);
    BOOST_TEST(*parseWholeInteger("-7") == -7);
    BOOST_TEST(*parseWholeInteger("9223372036854775807") == std::numeric_limits<long long>::max());
    for (const char* bad : {"", "1.5", "1e3", "9223372036854775808", "12a", " 3"})
        BOOST_TEST(!parseWholeInteger(bad).has_value(), "'" << bad << "'");
    // formatShortest's text reads back exactly
    for (double x : {0.1, 1e-7, 123456.789, -3.0})
        BOOST_TEST(*parseWholeNumber(formatShortest(x)) == x);
}

BOOST_AUTO_TEST_CASE(format_shortest_round_trips_random_values) {
    std::mt19937_64 rng(14);
    int checked = 0;
    for (int i = 0; i < 200000; ++i) {
        // random bit patterns cover every exponent; every 4th value is a "human" decimal
        const double d = i % 4 == 3 ? static_cast<double>(rng() % 100000) / 1000
                                    : fromBits<double>(rng());
        if (std::isfinite(d)) {
            const std::string t = formatShortest(d);
            const double back = std::strtod(t.c_str(), nullptr);
            if (std::memcmp(&back, &d, sizeof d) != 0) BOOST_FAIL(t << " does not read back");
            if (i % 16 == 0 && t.size() > shortestPrintf(d).size())
                BOOST_FAIL(t << " is longer than " << shortestPrintf(d));
            ++checked;
        }
        const float f = fromBits<float>(rng());
        if (std::isfinite(f)) {
            const std::string t = formatShortest(f);
            const float back = std::strtof(t.c_str(), nullptr);
            if (std::memcmp(&back, &f, sizeof f) != 0) BOOST_FAIL(t << " does not read back as float");
            if (t.size() > 16) BOOST_FAIL(t << ": a float needs at most 9 significant digits");
            ++checked;
        }
    }
    BOOST_TEST(checked > 350000);
}
