// tern-bench-methods: cost of one training step of each method, relative to the float baseline,
// on LeNet-5 (or VGG-7) with synthetic data. A step = what the method does per minibatch
// (forward, backward, projection/quantizer, update); ADMM's extragradient predictor is a second
// forward/backward pass and is reported both with and without it.
#include "tern/nn/models.hpp"
#include "tern/run/config.hpp"

#include <boost/program_options.hpp>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <memory>
#include <random>
#include <vector>

namespace po = boost::program_options;
using namespace tern;

int main(int argc, char** argv) {
    std::string model = "lenet5";
    Index batch = 100, iters = 30, warmup = 5;
    int threads = 2;
    po::options_description opts("tern-bench-methods");
    opts.add_options()("model", po::value(&model)->default_value(model), "lenet5 | vgg7")(
        "batch", po::value(&batch)->default_value(batch), "batch size")(
        "iters", po::value(&iters)->default_value(iters), "timed steps per method")(
        "warmup", po::value(&warmup)->default_value(warmup), "untimed steps first")(
        "threads", po::value(&threads)->default_value(threads), "threads")("help,h", "help");
    po::variables_map vm;
    try {
        po::store(po::parse_command_line(argc, argv, opts), vm);
        po::notify(vm);
    } catch (const std::exception& e) {
        std::cerr << "tern-bench-methods: " << e.what() << '\n';
        return 1;
    }
    if (vm.count("help")) {
        std::cout << opts;
        return 0;
    }
    nn::setNumThreads(threads);
    const bool mnist = model == "lenet5";
    io::Dataset d;
    d.name = "synthetic";
    d.channels = mnist ? 1 : 3;
    d.height = d.width = mnist ? 28 : 32;
    d.count = batch * (warmup + iters);
    std::mt19937_64 rng(1);
    std::normal_distribution<float> n;
    d.images.resize(static_cast<size_t>(d.count * d.imageSize()));
    for (auto& v : d.images) v = n(rng);
    for (Index i = 0; i < d.count; ++i) d.labels.push_back(static_cast<int>(i % 10));

    struct Case {
        std::string label, method;
        bool extragradient = true;
    };
    const std::vector<Case> cases{{"fp", "fp"},          {"bc", "bc"},
                                  {"bwn", "bwn"},        {"twn", "twn"},
                                  {"ttq", "ttq"},        {"pgd", "pgd"},
                                  {"admm (plain W-step)", "admm", false},
                                  {"admm (extragradient)", "admm", true}};
    // All methods are set up first and timed round-robin, one step each per round, so that a
    // burst of load on the machine hits every method alike instead of one of them. Each method
    // has its own network, and the speed of a network instance varies by up to ~10% with where
    // its buffers land (bimodal: 10.8 or 11.9 ms/step for the same fp step); so every method's
    // network also runs a plain float SGD step each round (before or after the method's, in
    // turn), and a method's cost is its median against that float step on the same network.
    struct Run {
        std::unique_ptr<nn::Network> net;
        std::unique_ptr<optim::Optimizer> opt, fp;
        std::vector<double> ms, fpMs;
    };
    std::vector<Run> runs;
    for (const Case& c : cases) {
        Run r;
        r.net = nn::makeModel(model, {d.channels, d.height, d.width}, 10);
        r.net->initialize(1);
        r.net->setTrainData(d, batch, 1);
        run::TrainConfig cfg;
        cfg.method = c.method;
        cfg.opt.admm.extragradient = c.extragradient;
        r.opt = optim::makeOptimizer(cfg.methodConfig(), cfg.trainSettings());
        r.opt->begin(*r.net);
        run::TrainConfig fpCfg;
        fpCfg.method = "fp";
        r.fp = optim::makeOptimizer(fpCfg.methodConfig(), fpCfg.trainSettings());
        r.fp->begin(*r.net);
        runs.push_back(std::move(r));
    }
    for (Index b = 0; b < warmup + iters; ++b)
        for (Run& r : runs)
            // alternate which of the two goes first: the first step after switching networks
            // finds cold caches (about 5% slower)
            for (auto* o : b % 2 == 0 ? std::array{r.opt.get(), r.fp.get()}
                                      : std::array{r.fp.get(), r.opt.get()}) {
                const auto t0 = std::chrono::steady_clock::now();
                o->step(*r.net, b);
                const double t = std::chrono::duration<double, std::milli>(
                                     std::chrono::steady_clock::now() - t0).count();
                if (b >= warmup) (o == r.fp.get() ? r.fpMs : r.ms).push_back(t);
            }
    auto median = [](std::vector<double>& v) {
        std::sort(v.begin(), v.end());
        return v[v.size() / 2];
    };
    std::printf("| method | ms/step (median) | p10 | p90 | fp on the same network (median) | vs fp |\n"
                "|---|---:|---:|---:|---:|---:|\n");
    for (size_t k = 0; k < cases.size(); ++k) {
        std::vector<double>& ms = runs[k].ms;
        const double med = median(ms), fpMed = median(runs[k].fpMs);
        std::printf("| %s | %.2f | %.2f | %.2f | %.2f | %+.1f%% |\n", cases[k].label.c_str(), med,
                    ms[ms.size() / 10], ms[ms.size() * 9 / 10], fpMed, 100.0 * (med / fpMed - 1.0));
    }
    return 0;
}
