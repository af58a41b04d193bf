// The apps' shared layer (apps/common): runApp's exit codes and one-line messages, asUsage,
// parseList, withDefault's --help text, INI --config files, and JSON files.
#define BOOST_TEST_MODULE app
#include <boost/test/unit_test.hpp>

#include "common/app.hpp"
#include "common/json.hpp"
#include "testing/helpers.hpp"

#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

using namespace tern;
using tern::testing::messageContains;
namespace po = boost::program_options;

namespace {

/// What runApp printed on stderr and returned.
struct Outcome {
    int code = -1;
    std::string err;
};

Outcome runCapturing(const std::function<int(int, char**)>& body,
                     app::HelpHint hint = app::HelpHint::NextLine) {
    std::ostringstream captured;
    std::streambuf* old = std::cerr.rdbuf(captured.rdbuf());
    char name[] = "tern-x";
    char* argv[] = {name, nullptr};
    Outcome o;
    o.code = app::runApp("tern-x", 1, argv, body, hint);
    std::cerr.rdbuf(old);
    o.err = captured.str();
    return o;
}

template <class E>
std::function<int(int, char**)> throwing(const E& e) {
    return [e](int, char**) -> int { throw e; };
}

/// argv for po::parse_command_line from words (the program name first).
struct Args {
    std::vector<std::string> words;
    std::vector<char*> ptrs;
    explicit Args(std::vector<std::string> w) : words(std::move(w)) {
        words.insert(words.begin(), "tern-x");
        for (auto& s : words) ptrs.push_back(s.data());
    }
    int argc() const { return static_cast<int>(ptrs.size()); }
    char** argv() { return ptrs.data(); }
};

std::string writeText(const std::string& name, const std::string& text) {
    const std::string path = tern::testing::tempDir("app") + "/" + name;
    std::ofstream(path) << text;
    return path;
}

}  // namespace

BOOST_AUTO_TEST_CASE(run_app_maps_errors_to_exit_codes_and_one_line) {
    const Outcome ok = runCapturing([](int argc, char** argv) {
        BOOST_TEST(argc == 1);
        BOOST_TEST(std::string(argv[0]) == "tern-x");
        return 7;
    });
    BOOST_TEST(ok.code == 7);
    BOOST_TEST(ok.err == "");

    const Outcome usage = runCapturing(throwing(app::UsageError("--out is required")));
    BOOST_TEST(usage.code == app::kExitUsage);
    BOOST_TEST(usage.err == "tern-x: --out is required\n(see tern-x --help)\n");
    const Outcome sameLine =
        runCapturing(throwing(app::UsageError("--out is required")), app::HelpHint::SameLine);
    BOOST_TEST(sameLine.err == "tern-x: --out is required (see tern-x --help)\n");

    const Outcome unknown = runCapturing(throwing(po::unknown_option("--bogus")));
    BOOST_TEST(unknown.code == 1);
    BOOST_TEST(unknown.err == "tern-x: unrecognised option '--bogus'\n(see tern-x --help)\n");

    const Outcome input = runCapturing(throwing(std::invalid_argument("no such file 'a.h5'")));
    BOOST_TEST(input.code == 1);
    BOOST_TEST(input.err == "tern-x: no such file 'a.h5'\n");

    const Outcome failed = runCapturing(throwing(std::runtime_error("disk full")));
    BOOST_TEST(failed.code == app::kExitFailed);
    BOOST_TEST(failed.err == "tern-x: disk full\n");

    const Outcome odd = runCapturing(throwing(42));
    BOOST_TEST(odd.code == 2);
    BOOST_TEST(odd.err == "tern-x: unknown error\n");
}

BOOST_AUTO_TEST_CASE(as_usage_turns_any_error_into_a_usage_error) {
    BOOST_TEST(app::asUsage([] { return 3; }) == 3);
    BOOST_CHECK_EXCEPTION(app::asUsage([]() -> int { throw std::runtime_error("bad grid"); }),
                          app::UsageError, messageContains("bad grid"));
    BOOST_CHECK_EXCEPTION(app::asUsage([]() -> int { throw std::out_of_range("x"); }),
                          app::UsageError,
                          [](const app::UsageError& e) { return std::string(e.what()) == "x"; });
    // an error while reading the command line gets the --help hint
    const Outcome o = runCapturing([](int, char**) -> int {
        app::asUsage(
            [] { throw std::invalid_argument("TrainConfig::validate(): lr must be > 0"); });
        return 0;
    });
    BOOST_TEST(o.code == 1);
    BOOST_TEST(o.err == "tern-x: TrainConfig::validate(): lr must be > 0\n(see tern-x --help)\n");
}

BOOST_AUTO_TEST_CASE(parse_list_reads_whole_items_and_names_the_bad_one) {
    BOOST_TEST((app::parseList<long>("15,25", "--lr-steps", "an epoch number") ==
                std::vector<long>{15, 25}));
    BOOST_TEST((app::parseList<long>(",3,,4,", "--lr-steps", "an epoch number") ==
                std::vector<long>{3, 4}));
    BOOST_TEST(app::parseList<long>("", "--lr-steps", "an epoch number").empty());
    BOOST_TEST((app::parseList<double>("0.5,1e-3,1", "--fractions", "a number") ==
                std::vector<double>{0.5, 1e-3, 1}));
    BOOST_CHECK_EXCEPTION(app::parseList<long>("10,1.5", "--lr-steps", "an epoch number"),
                          std::invalid_argument, [](const std::invalid_argument& e) {
                              return std::string(e.what()) ==
                                     "--lr-steps: '1.5' is not an epoch number";
                          });
    BOOST_CHECK_EXCEPTION(app::parseList<double>("0.5,x", "--fractions", "a number"),
                          std::invalid_argument,
                          messageContains("--fractions: 'x' is not a number"));
    BOOST_CHECK_EXCEPTION(app::parseList<double>("0.5 ", "--fractions", "a number"),
                          std::invalid_argument, messageContains("'0.5 ' is not a number"));
    BOOST_CHECK_EXCEPTION(app::parseList<long>("99999999999999999999", "--lr-steps", "an epoch"),
                          std::invalid_argument, messageContains("is not an epoch"));
}

BOOST_AUTO_TEST_CASE(with_default_shows_the_shortest_text_in_help) {
    double lr = 0.1, gamma = 0.1;
    float dropout = 0.3f;
    long epochs = 30;
    std::string model = "lenet5";
    double width = 0;
    po::options_description d("Options");
    d.add_options()("lr", app::withDefault(&lr), "lr")("gamma", app::withDefault(&gamma), "g")(
        "dropout", app::withDefault(&dropout), "p")("epochs", app::withDefault(&epochs), "e")(
        "model", app::withDefault(&model), "m")("width", app::withDefault(&width, 1.0), "w");
    std::ostringstream help;
    help << d;
    BOOST_TEST_MESSAGE(help.str());
    for (const std::string shown : {"--lr arg (=0.1)", "--dropout arg (=0.3)", "--epochs arg (=30)",
                                    "--model arg (=lenet5)", "--width arg (=1)"})
        BOOST_TEST(help.str().find(shown) != std::string::npos, shown);
    BOOST_TEST(help.str().find("0.1000") == std::string::npos);
    BOOST_TEST(help.str().find("0.3000") == std::string::npos);

    Args args({"--gamma", "0.5"});
    po::variables_map vm;
    po::store(po::parse_command_line(args.argc(), args.argv(), d), vm);
    po::notify(vm);
    BOOST_TEST(lr == 0.1);  // the default is the value itself, not its text read back
    BOOST_TEST(gamma == 0.5);
    BOOST_TEST(dropout == 0.3f);
    BOOST_TEST(width == 1.0);
    BOOST_TEST(vm["lr"].defaulted());
}

BOOST_AUTO_TEST_CASE(load_config_reads_an_ini_file_and_the_command_line_wins) {
    double lr = 0.1;
    long epochs = 30;
    std::string steps;
    po::options_description d("Options");
    d.add_options()("lr", app::withDefault(&lr), "")("epochs", app::withDefault(&epochs), "")(
        "lr-steps", po::value(&steps), "")("config", po::value<std::string>(), "");
    const std::string ini =
        writeText("run.ini", "# a run\nlr = 0.5\nepochs = 12\nlr-steps = 5,8\n");

    Args args({"--config", ini, "--lr", "0.25"});
    po::variables_map vm;
    po::store(po::parse_command_line(args.argc(), args.argv(), d), vm);
    app::loadConfig(vm, d);
    po::notify(vm);
    BOOST_TEST(lr == 0.25);
    BOOST_TEST(epochs == 12);
    BOOST_TEST(steps == "5,8");

    po::variables_map none;  // no --config: nothing to do
    BOOST_CHECK_NO_THROW(app::loadConfig(none, d));

    Args missing({"--config", "/nonexistent/run.ini"});
    po::variables_map vm2;
    po::store(po::parse_command_line(missing.argc(), missing.argv(), d), vm2);
    BOOST_CHECK_EXCEPTION(
        app::loadConfig(vm2, d), std::invalid_argument, [](const std::invalid_argument& e) {
            return std::string(e.what()) == "--config: cannot open '/nonexistent/run.ini'";
        });

    Args bad({"--config", writeText("bad.ini", "lr = 0.5\nbogus = 1\n")});
    po::variables_map vm3;
    po::store(po::parse_command_line(bad.argc(), bad.argv(), d), vm3);
    BOOST_CHECK_EXCEPTION(app::loadConfig(vm3, d), po::error, messageContains("bogus"));
}

BOOST_AUTO_TEST_CASE(read_json_file_names_the_file) {
    const nlohmann::json j = app::readJsonFile(writeText("ok.json", "{\"a\": [1, 2]}"));
    BOOST_TEST(j["a"].size() == 2u);
    BOOST_CHECK_EXCEPTION(app::readJsonFile("/nonexistent/summary.json"), std::runtime_error,
                          [](const std::runtime_error& e) {
                              return std::string(e.what()) ==
                                     "/nonexistent/summary.json: cannot open";
                          });
    const std::string cut =
        writeText("summary.json", "{\"status\": \"completed\", \"seconds\": 1.");
    BOOST_CHECK_EXCEPTION(app::readJsonFile(cut), std::runtime_error,
                          messageContains(cut + ": not valid JSON ("));
    const std::string trailing = writeText("trailing.json", "{} x");
    BOOST_CHECK_EXCEPTION(app::readJsonFile(trailing), std::runtime_error,
                          messageContains(trailing + ": not valid JSON"));
}

BOOST_AUTO_TEST_CASE(flatten_scalars_under_dotted_keys) {
    const auto j = nlohmann::json::parse(R"({
        "status": "completed", "final_test_acc": 0.10000000000000001, "seconds": 1.5e-05,
        "epochs_completed": 20, "offset": -3, "big": 18446744073709551615, "ok": true,
        "none": null, "path": "a \"b\"\u0001\\c", "layers": [{"block": "fc1", "total": 3}],
        "cost": {"nonzero_weights": 25320, "deep": {"x": 2.5}},
        "config": {"method": "admm", "lr": "0.05"}})");
    const auto f = app::flattenScalars(j);
    const std::map<std::string, std::string> expected{{"status", "completed"},
                                                      {"final_test_acc", "0.1"},
                                                      {"seconds", "1.5e-05"},
                                                      {"epochs_completed", "20"},
                                                      {"offset", "-3"},
                                                      {"big", "18446744073709551615"},
                                                      {"ok", "true"},
                                                      {"none", ""},
                                                      {"path", "a \"b\"\x01\\c"},
                                                      {"cost.nonzero_weights", "25320"},
                                                      {"cost.deep.x", "2.5"},
                                                      {"config.method", "admm"},
                                                      {"config.lr", "0.05"}};
    BOOST_TEST(f.size() == expected.size());
    for (const auto& [k, v] : expected) {
        BOOST_TEST_INFO("key " << k);
        BOOST_TEST(f.count(k) == 1u);
        if (f.count(k)) BOOST_TEST(f.at(k) == v);
    }
    BOOST_TEST(f.count("layers") == 0u);
    BOOST_TEST(f.count("layers.block") == 0u);
}
