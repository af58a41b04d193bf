// tern-bench-infer: inference throughput of a deployed ternary LeNet-5 (TernaryModel: codes as
// f32, BN folded into per-channel scale/shift post-ops) against the float network it came from
// (Network::logits: conv/IP + BN + ReLU + pool in inference mode), batch 1 and batch 100.
//
// The weights are random (He init, then projected onto {-a, 0, +a} per tensor with the TWN
// threshold): speed does not depend on their values. Two variants: with BN (folded: s_c != 1)
// and without BN with a = 1 (multiplication-free: s_c = 1, only a bias). The same input batch
// is used for every call. Reports the median over --iters timed calls after --warmup calls.
// Machine-readable lines: RESULT impl=... model=... bn=... batch=... threads=... median_ms=... img_s=...
#include "tern/deploy/model.hpp"
#include "tern/nn/models.hpp"

#include <boost/program_options.hpp>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <functional>
#include <iomanip>
#include <iostream>
#include <random>
#include <sstream>

#include <unistd.h>

namespace po = boost::program_options;
using tern::Index;
using namespace tern::nn;
using namespace tern::deploy;

namespace {

double medianMs(const std::function<void()>& f, int warmup, int iters) {
    for (int i = 0; i < warmup; ++i) f();
    std::vector<double> t;
    for (int i = 0; i < iters; ++i) {
        const auto t0 = std::chrono::steady_clock::now();
        f();
        t.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    }
    std::sort(t.begin(), t.end());
    return t[t.size() / 2];
}

/// Projects every constrained block onto {-a, 0, +a} (TWN threshold 0.7 mean|W|); a = 1 when
/// `unitScale`.
void ternarize(Network& net, bool unitScale) {
    for (tern::ParameterBlock* b : net.parameters().constrained()) {
        const float delta = 0.7f * b->value.cwiseAbs().mean();
        double sum = 0;
        Index n = 0;
        for (float v : b->value)
            if (std::abs(v) > delta) sum += std::abs(v), ++n;
        const float a = unitScale ? 1.0f : static_cast<float>(n ? sum / double(n) : 1.0);
        for (auto& v : b->value) v = std::abs(v) > delta ? (v > 0 ? a : -a) : 0.0f;
    }
}

}  // namespace

int main(int argc, char** argv) {
    std::string model = "lenet5", batches = "1,100";
    int threads = 2, warmup = 20, iters = 200;
    po::options_description desc("tern-bench-infer: deployed ternary vs float inference\nOptions");
    desc.add_options()("help,h", "this help")
        ("model", po::value(&model)->default_value(model), "lenet5 | gtc-lenet | vgg7 | vgg16 | tiny")
        ("batches", po::value(&batches)->default_value(batches), "comma-separated batch sizes")
        ("threads", po::value(&threads)->default_value(threads), "OpenMP threads")
        ("warmup", po::value(&warmup)->default_value(warmup), "untimed calls")
        ("iters", po::value(&iters)->default_value(iters), "timed calls (median reported)");
    try {
        po::variables_map vm;
        po::store(po::parse_command_line(argc, argv, desc), vm);
        po::notify(vm);
        if (vm.count("help")) {
            std::cout << desc << '\n';
            return 0;
        }
        if (iters < 1 || warmup < 0) throw std::invalid_argument("--iters must be > 0, --warmup >= 0");
    } catch (const std::exception& e) {
        std::cerr << "tern-bench-infer: " << e.what() << '\n';
        return 1;
    }
    try {
        setNumThreads(threads);
        std::vector<Index> bs;
        std::stringstream ss(batches);
        for (std::string s; std::getline(ss, s, ',');) bs.push_back(std::stol(s));
        const std::vector<Index> input = model == "vgg7" ? std::vector<Index>{3, 32, 32}
                                                         : std::vector<Index>{1, 28, 28};
        std::cout << "model " << model << ", threads " << numThreads() << ", median of " << iters
                  << " calls\n";
        for (const bool bn : {true, false}) {
            ModelOptions mo;
            mo.batchNorm = bn;
            auto net = makeModel(model, input, 10, mo);
            net->initialize(1);
            ternarize(*net, !bn);
            TernaryModel tm = TernaryModel::fromNetwork(*net);
            {
                const DeployedCost c = tm.cost();
                const std::string file = "/tmp/tern-bench-infer-" + std::to_string(::getpid()) + ".h5";
                tm.save(file);
                const auto bytes = std::filesystem::file_size(file);
                std::filesystem::remove(file);
                std::cout << std::setprecision(4) << "STORAGE model=" << model << " bn=" << bn
                          << " float32_bytes=" << c.float32Bits / 8 << " payload_bytes=" << c.storageBits / 8
                          << " file_bytes=" << bytes << " ternary_layer_bytes=" << c.ternaryBits / 8
                          << " ternary_layer_float32_bytes=" << c.ternaryFloat32Bits / 8
                          << " ternary_ratio=" << c.ternaryFloat32Bits / c.ternaryBits
                          << " mults=" << c.multiplications << " adds=" << c.additions << '\n';
                for (const DeployedLayer& l : tm.layers())
                    if (l.kind == DeployedKind::Conv || l.kind == DeployedKind::Fc)
                        std::cout << "  " << l.name << " " << l.weightShape.str()
                                  << " " << (l.quantized() ? codingName(l.coding) : "float32")
                                  << " nonzeros=" << l.nonzeros()
                                  << " mult_free=" << l.multiplicationFree << '\n';
            }
            for (Index b : bs) {
                tern::io::Dataset d;
                d.name = "synthetic";
                d.count = b;
                d.channels = input[0];
                d.height = input[1];
                d.width = input[2];
                d.images.resize(static_cast<size_t>(b * d.imageSize()));
                std::mt19937_64 rng(7);
                std::normal_distribution<float> nd;
                for (auto& x : d.images) x = nd(rng);
                d.labels.assign(static_cast<size_t>(b), 0);
                std::vector<float> out(static_cast<size_t>(b * 10));
                const double tf = medianMs([&] { net->logits(d, b); }, warmup, iters);
                const double tt = medianMs([&] { tm.logits(d.images.data(), b, out.data()); }, warmup, iters);
                for (const auto& [impl, ms] : {std::pair{"tern-float", tf}, std::pair{"tern-ternary", tt}})
                    std::cout << "RESULT impl=" << impl << " model=" << model << " bn=" << bn
                              << (impl == std::string("tern-ternary") && tm.multiplicationFree() ? " mult_free=1" : "")
                              << " batch=" << b << " threads=" << threads << std::fixed
                              << std::setprecision(4) << " median_ms=" << ms << std::setprecision(0)
                              << " img_s=" << double(b) / ms * 1000.0 << std::defaultfloat << '\n';
            }
        }
        return 0;
    } catch (const std::exception& e) {
        std::cerr << "tern-bench-infer: " << e.what() << '\n';
        return 2;
    }
}
