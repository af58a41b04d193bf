#define BOOST_TEST_MODULE core
#include <boost/test/unit_test.hpp>

#include "tern/core/error.hpp"
#include "tern/core/format.hpp"
#include "tern/core/parameter.hpp"
#include "tern/core/state.hpp"
#include "testing/helpers.hpp"

#include <cmath>
#include <limits>

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
