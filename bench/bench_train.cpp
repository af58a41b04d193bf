// tern-bench-train: throughput of full training steps of LeNet-5 / VGG-7 / the ResNets on
// synthetic data.
//
// A step = forward + backward (Network::evaluateWithGradient) + SGD with momentum and weight
// decay on every parameter block, as PyTorch's torch.optim.SGD does it:
//   g' = g + wd*w (blocks with decay);  v = mu*v + g';  w -= lr*v
// The same batch is used for every step (no data loading in the timed region, as in
// bench/torch_train.py). Reports median / p10 / p90 ms per step and images/s, then a breakdown
// timed separately on the same network: forward only (Network::evaluate), forward+backward,
// update only. With --verbose-primitives, a few more steps run with oneDNN's verbose mode on
// and the per-primitive execution times are aggregated, to show where the time goes.
//
// Inputs: 1x28x28 (LeNet-5), 3x32x32 (VGG-7, the CIFAR ResNets resnet20/32/44/56), 3x224x224
// (ResNet-18); --image-size changes the height and width. 10 classes unless --classes.
//
// The last line is machine-readable:
//   RESULT impl=tern model=... width=... batch=... threads=... median_ms=... img_s=... ...
//          start_rss_mb=... peak_rss_mb=...   (MiB: VmRSS before the network is built, and
//          getrusage(RUSAGE_SELF).ru_maxrss at the end: the process's peak over all the steps)
#include "tern/io/dataset.hpp"
#include "tern/nn/layers.hpp"
#include "tern/nn/models.hpp"

#include <boost/program_options.hpp>
#include <dnnl.hpp>
#include <omp.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <iomanip>
#include <iostream>
#include <limits>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <vector>

namespace po = boost::program_options;
using tern::Index;

namespace {

struct Options {
    std::string model = "lenet5";
    double width = 1.0;
    Index batch = 100;
    int threads = 2;
    int warmup = 3;
    int iters = 20;
    double lr = 0.01, momentum = 0.9, weightDecay = 1e-4;
    bool breakdown = true;
    bool verbosePrimitives = false;
    bool peak = false;
    int profileSteps = 3;
    int top = 25;
    std::uint64_t seed = 1;
    std::string winograd = "auto";
    bool fusion = true, pool = true;  // Network::setLayerFusion / setGradientPooling
    int classes = 10;
    Index imageSize = 0;  // 0: the model's own (28, 32 or 224)
};

bool isCifarResnet(const std::string& m) {
    return m == "resnet20" || m == "resnet32" || m == "resnet44" || m == "resnet56";
}

/// Peak resident set size of this process so far, MiB (Linux: ru_maxrss is in KiB).
double peakRssMb() {
    rusage ru{};
    getrusage(RUSAGE_SELF, &ru);
    return static_cast<double>(ru.ru_maxrss) / 1024.0;
}

/// Current resident set size, MiB (VmRSS of /proc/self/status; NaN where there is none).
double currentRssMb() {
    std::FILE* f = std::fopen("/proc/self/status", "r");
    double kb = std::numeric_limits<double>::quiet_NaN();
    if (!f) return kb;
    char line[256];
    while (std::fgets(line, sizeof line, f))
        if (std::sscanf(line, "VmRSS: %lf kB", &kb) == 1) break;
    std::fclose(f);
    return kb / 1024.0;
}

struct Stats {
    double median = 0, p10 = 0, p90 = 0, mean = 0;
};

double percentile(std::vector<double> v, double q) {
    std::sort(v.begin(), v.end());
    const double pos = q * static_cast<double>(v.size() - 1);
    const size_t lo = static_cast<size_t>(pos);
    const size_t hi = std::min(lo + 1, v.size() - 1);
    return v[lo] + (pos - static_cast<double>(lo)) * (v[hi] - v[lo]);
}

Stats summarize(const std::vector<double>& ms) {
    Stats s;
    s.median = percentile(ms, 0.5);
    s.p10 = percentile(ms, 0.1);
    s.p90 = percentile(ms, 0.9);
    for (double x : ms) s.mean += x;
    s.mean /= static_cast<double>(ms.size());
    return s;
}

/// Milliseconds of each of `n` calls of f.
std::vector<double> timeIt(int n, const std::function<void()>& f) {
    std::vector<double> ms;
    ms.reserve(static_cast<size_t>(n));
    for (int i = 0; i < n; ++i) {
        const auto t0 = std::chrono::steady_clock::now();
        f();
        const auto t1 = std::chrono::steady_clock::now();
        ms.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
    }
    return ms;
}

/// SGD with momentum and L2 weight decay over every block, in chunks spread over the OpenMP
/// threads (torch.optim.SGD's per-parameter kernels are multi-threaded too).
class SgdMomentum {
public:
    SgdMomentum(tern::ParameterSet& params, double lr, double mu, double wd)
        : blocks_(params.all()), lr_(static_cast<float>(lr)), mu_(static_cast<float>(mu)),
          wd_(static_cast<float>(wd)) {
        constexpr Index kChunk = 1 << 15;
        for (size_t b = 0; b < blocks_.size(); ++b) {
            velocity_.push_back(tern::Vector::Zero(blocks_[b]->value.size()));
            for (Index s = 0; s < blocks_[b]->value.size(); s += kChunk)
                chunks_.push_back({b, s, std::min(kChunk, blocks_[b]->value.size() - s)});
        }
    }
    void step() {
        const long n = static_cast<long>(chunks_.size());
#pragma omp parallel for schedule(static)
        for (long i = 0; i < n; ++i) {
            const Chunk& c = chunks_[static_cast<size_t>(i)];
            tern::ParameterBlock& p = *blocks_[c.block];
            auto w = p.value.segment(c.start, c.len);
            auto g = p.grad.segment(c.start, c.len);
            auto v = velocity_[c.block].segment(c.start, c.len);
            // v = mu*v + (g + wd*w);  w -= lr*v
            if (p.decay)
                v = mu_ * v + g + wd_ * w;
            else
                v = mu_ * v + g;
            w -= lr_ * v;
        }
    }

private:
    struct Chunk {
        size_t block;
        Index start, len;
    };
    std::vector<tern::ParameterBlock*> blocks_;
    std::vector<tern::Vector> velocity_;
    std::vector<Chunk> chunks_;
    float lr_, mu_, wd_;
};

/// One line of oneDNN's verbose output (v2.x):
///   onednn_verbose,exec,cpu,<kind>,<impl>,<prop>,<mds>,<attrs>,<aux>,<shape>,<ms>
struct VerboseLine {
    std::string kind, impl, prop, mds, shape;
    double ms = 0;
};

bool parseVerbose(const std::string& line, VerboseLine& out) {
    if (line.rfind("onednn_verbose,exec,", 0) != 0 && line.rfind("dnnl_verbose,exec,", 0) != 0)
        return false;
    std::vector<std::string> f;
    std::stringstream ss(line);
    for (std::string tok; std::getline(ss, tok, ',');) f.push_back(tok);
    if (f.size() < 10) return false;
    out.kind = f[3];
    out.impl = f[4];
    out.prop = f[5];
    out.mds = f[6];
    out.shape = f[f.size() - 2];
    try {
        out.ms = std::stod(f.back());
    } catch (const std::exception&) {
        return false;
    }
    return true;
}

/// "src_f32::blocked:abcd:f0 dst_f32::blocked:aBcd16b:f0" -> "src:abcd dst:aBcd16b".
std::string shortFormats(const std::string& mds) {
    std::stringstream in(mds), out;
    bool first = true;
    for (std::string tok; in >> tok;) {
        const auto us = tok.find('_');
        const std::string arg = tok.substr(0, us);
        std::vector<std::string> parts;
        std::stringstream ts(tok);
        for (std::string p; std::getline(ts, p, ':');) parts.push_back(p);
        const std::string fmt = parts.size() > 3 ? parts[3] : "?";
        if (fmt == "undef" || fmt.empty()) continue;
        out << (first ? "" : " ") << arg << ":" << fmt;
        first = false;
    }
    return out.str();
}

/// Floating-point operations of a convolution or inner product from its verbose shape
/// ("mb100_ic32oc64_ih12oh8kh5sh1..._iw12ow8kw5sw1...", "mb100ic64ih4iw4oc512"): 2 per
/// multiply-add, the same for forward, backward-data and backward-weights. 0 if not parseable.
double primitiveFlops(const std::string& kind, const std::string& shape) {
    auto field = [&](const std::string& name, double dflt) {
        // the number after the first "name" that is not part of a longer name ("oh" vs "ohw")
        for (size_t at = shape.find(name); at != std::string::npos; at = shape.find(name, at + 1)) {
            const size_t from = at + name.size();
            if (from < shape.size() && std::isdigit(static_cast<unsigned char>(shape[from])))
                return std::stod(shape.substr(from));
        }
        return dflt;
    };
    const double mb = field("mb", 0), ic = field("ic", 0), oc = field("oc", 0);
    if (kind == "convolution") {
        const double g = field("g", 1);
        return 2 * mb * (ic / g) * oc * field("oh", 1) * field("ow", 1) * field("kh", 1) * field("kw", 1);
    }
    if (kind == "inner_product") return 2 * mb * ic * oc * field("ih", 1) * field("iw", 1);
    return 0;
}

/// Median GFLOP/s of a large single-precision GEMM (oneDNN's sgemm, n x n x n, on the OpenMP
/// threads): the attainable compute rate that the convolutions are measured against.
double sgemmGflops(Index n) {
    std::vector<float> a(static_cast<size_t>(n * n), 0.5f), b(a), c(a.size());
    std::vector<double> rates;
    for (int rep = 0; rep < 7; ++rep) {
        const auto t0 = std::chrono::steady_clock::now();
        dnnl::sgemm('N', 'N', n, n, n, 1.0f, a.data(), n, b.data(), n, 0.0f, c.data(), n);
        const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        if (rep > 0) rates.push_back(2.0 * double(n) * double(n) * double(n) / s / 1e9);
    }
    std::sort(rates.begin(), rates.end());
    return rates[rates.size() / 2];
}

/// Runs `steps` calls of `step` with oneDNN verbose output captured from stdout, and prints
/// the execution time per primitive kind and the top primitives, per step.
void profilePrimitives(int steps, int top, double wallMsPerStep,
                       const std::function<void()>& step) {
    std::fflush(stdout);
    std::cout.flush();
    std::FILE* tmp = std::tmpfile();
    if (!tmp) {
        std::cerr << "profilePrimitives(): cannot create a temporary file\n";
        return;
    }
    const int saved = dup(STDOUT_FILENO);
    dup2(fileno(tmp), STDOUT_FILENO);
    dnnl::set_verbose(1);
    std::vector<double> wall = timeIt(steps, step);
    dnnl::set_verbose(0);
    std::fflush(stdout);
    dup2(saved, STDOUT_FILENO);
    close(saved);

    std::rewind(tmp);
    std::map<std::string, double> byKind;
    std::map<std::string, std::pair<double, int>> byPrim;
    std::map<std::string, double> flops;  // per call
    double workFlops = 0, workMs = 0;     // convolutions and inner products
    double total = 0;
    int lines = 0;
    char buf[8192];
    while (std::fgets(buf, sizeof buf, tmp)) {
        std::string line(buf);
        if (!line.empty() && line.back() == '\n') line.pop_back();
        VerboseLine v;
        if (!parseVerbose(line, v)) continue;
        ++lines;
        total += v.ms;
        byKind[v.kind + " " + v.prop] += v.ms;
        const std::string key = v.kind + " " + v.prop + " " + v.impl + " " + v.shape + " [" +
                                shortFormats(v.mds) + "]";
        auto& e = byPrim[key];
        e.first += v.ms;
        e.second += 1;
        flops[key] = primitiveFlops(v.kind, v.shape);
        workFlops += flops[key];
        if (flops[key] > 0) workMs += v.ms;
    }
    std::fclose(tmp);
    const double n = static_cast<double>(steps);
    double wallMean = 0;
    for (double x : wall) wallMean += x;
    wallMean /= n;
    std::cout << "\n== oneDNN primitives (DNNL verbose, " << steps << " steps, " << lines / steps
              << " primitive executions per step)\n"
              << std::fixed << std::setprecision(2) << "  exec total " << total / n
              << " ms/step; wall with verbose " << wallMean << " ms/step; wall without "
              << wallMsPerStep << " ms/step; outside oneDNN ~" << wallMsPerStep - total / n
              << " ms/step\n";
    if (lines == 0) {
        std::cout << "  (no verbose lines captured: this oneDNN ignores dnnl::set_verbose at run "
                     "time; rerun with DNNL_VERBOSE=1 in the environment)\n";
        return;
    }
    std::cout << "  convolutions + inner products: " << std::setprecision(3) << workFlops / n / 1e9
              << " GFLOP/step in " << std::setprecision(2) << workMs / n << " ms/step ("
              << std::setprecision(0) << workFlops / (workMs * 1e6) << " GFLOP/s)\n"
              << "WORK gflop_per_step=" << std::setprecision(4) << workFlops / n / 1e9
              << " ms_per_step=" << workMs / n << "\n" << std::setprecision(2);
    std::vector<std::pair<double, std::string>> kinds;
    for (auto& [k, ms] : byKind) kinds.push_back({ms, k});
    std::sort(kinds.rbegin(), kinds.rend());
    std::cout << "  by kind:\n";
    for (auto& [ms, k] : kinds)
        std::cout << "    " << std::setw(9) << ms / n << " ms  " << std::setw(5)
                  << 100.0 * ms / total << "%  " << k << "\n";
    // (ms per step, key); the GFLOP/s column is flops per call / ms per call
    std::vector<std::pair<double, std::string>> prims;
    for (auto& [k, e] : byPrim) prims.push_back({e.first, k});
    std::sort(prims.rbegin(), prims.rend());
    std::cout << "  top primitives (ms per step; GFLOP/s of convolutions and inner products):\n";
    for (int i = 0; i < top && i < static_cast<int>(prims.size()); ++i) {
        const auto& [ms, key] = prims[static_cast<size_t>(i)];
        const int calls = byPrim[key].second;
        const double f = flops[key];
        std::cout << "    " << std::setw(9) << ms / n << " ms  ";
        if (f > 0)
            std::cout << std::setw(5) << std::setprecision(0) << f / (ms / calls * 1e6) << " GFLOP/s  ";
        else
            std::cout << std::string(15, ' ');
        std::cout << std::setprecision(2) << key
                  << (calls / steps > 1 ? " x" + std::to_string(calls / steps) : std::string()) << "\n";
    }
}

void printStats(const char* what, const Stats& s, Index batch) {
    std::cout << std::fixed << std::setprecision(2) << "  " << std::left << std::setw(16) << what
              << std::right << " median " << std::setw(9) << s.median << " ms  p10 "
              << std::setw(9) << s.p10 << "  p90 " << std::setw(9) << s.p90 << "  ("
              << std::setprecision(1) << 1000.0 * static_cast<double>(batch) / s.median
              << " img/s)\n";
}

int run(const Options& o) {
    const double startRssMb = currentRssMb();
    tern::nn::setNumThreads(o.threads);
    if (o.peak) {
        const double g = sgemmGflops(2048);
        std::cout << "PEAK sgemm 2048^3, " << o.threads << " threads: " << std::fixed
                  << std::setprecision(0) << g << " GFLOP/s (median of 6)\nPEAK gflops=" << g << "\n";
    }
    std::vector<Index> input = o.model == "lenet5"     ? std::vector<Index>{1, 28, 28}
                               : o.model == "resnet18" ? std::vector<Index>{3, 224, 224}
                                                       : std::vector<Index>{3, 32, 32};
    if (o.imageSize > 0) input[1] = input[2] = o.imageSize;
    tern::nn::ModelOptions mo;
    mo.width = o.width;
    auto net = tern::nn::makeModel(o.model, input, o.classes, mo);
    // --winograd: which Winograd the eligible convolutions use (Conv2d::setWinogradImpl)
    for (const auto& layer : net->layers())
        if (auto* conv = dynamic_cast<tern::nn::Conv2d*>(layer.get())) {
            using W = tern::nn::Conv2d::WinogradImpl;
            if (o.winograd == "off") conv->setWinograd(false);
            else if (o.winograd == "onednn") conv->setWinogradImpl(W::OneDnn);
            else if (o.winograd == "tern") conv->setWinogradImpl(W::Tern);
        }
    net->initialize(o.seed);
    net->setLayerFusion(o.fusion);
    net->setGradientPooling(o.pool);

    // Synthetic data: one batch of N(0, 1) images and uniform labels.
    tern::io::Dataset data;
    data.name = "synthetic";
    data.count = o.batch;
    data.channels = input[0];
    data.height = input[1];
    data.width = input[2];
    std::mt19937_64 rng(o.seed);
    std::normal_distribution<float> pixel(0.0f, 1.0f);
    data.images.resize(static_cast<size_t>(data.count * data.imageSize()));
    for (auto& x : data.images) x = pixel(rng);
    data.labels.resize(static_cast<size_t>(data.count));
    for (auto& l : data.labels) l = static_cast<std::int32_t>(rng() % static_cast<std::uint64_t>(o.classes));
    net->setTrainData(data, o.batch, o.seed);

    SgdMomentum sgd(net->parameters(), o.lr, o.momentum, o.weightDecay);
    double firstLoss = 0, lastLoss = 0;
    auto step = [&] {
        lastLoss = net->evaluateWithGradient(0);
        sgd.step();
    };

    std::cout << "tern-bench-train: model " << o.model << " width " << o.width << " input "
              << input[0] << "x" << input[1] << "x" << input[2] << " classes " << o.classes
              << " batch " << o.batch << " threads " << tern::nn::numThreads() << " ("
              << net->parameters().numel() << " parameters), oneDNN "
              << dnnl::version()->major << "." << dnnl::version()->minor << "."
              << dnnl::version()->patch << ", warmup " << o.warmup << ", iters " << o.iters
              << "\n";

    const auto tc0 = std::chrono::steady_clock::now();
    firstLoss = net->evaluateWithGradient(0);  // builds the plan (primitive creation)
    const double setupMs =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - tc0).count();
    sgd.step();
    for (int i = 0; i < o.warmup; ++i) step();

    const Stats full = summarize(timeIt(o.iters, step));
    std::cout << "  first step (plan + primitive creation) " << std::fixed
              << std::setprecision(1) << setupMs << " ms; loss " << std::setprecision(4)
              << firstLoss << " -> " << lastLoss << "\n";
    printStats("train step", full, o.batch);

    const double nan = std::numeric_limits<double>::quiet_NaN();
    Stats fwd{nan, nan, nan, nan}, fwdBwd = fwd, upd = fwd;
    if (o.breakdown) {
        fwd = summarize(timeIt(o.iters, [&] { net->evaluate(0); }));
        fwdBwd = summarize(timeIt(o.iters, [&] { net->evaluateWithGradient(0); }));
        upd = summarize(timeIt(o.iters, [&] { sgd.step(); }));
        std::cout << "  breakdown (timed separately):\n";
        printStats("forward", fwd, o.batch);
        printStats("forward+backward", fwdBwd, o.batch);
        printStats("backward (diff)", {fwdBwd.median - fwd.median, 0, 0, 0}, o.batch);
        printStats("update", upd, o.batch);
    }
    if (o.verbosePrimitives) profilePrimitives(o.profileSteps, o.top, full.median, step);

    std::cout << std::fixed << std::setprecision(3) << "RESULT impl=tern model=" << o.model
              << " width=" << o.width << " batch=" << o.batch << " threads=" << o.threads
              << " median_ms=" << full.median << " p10_ms=" << full.p10
              << " p90_ms=" << full.p90 << " img_s=" << std::setprecision(1)
              << 1000.0 * static_cast<double>(o.batch) / full.median << std::setprecision(3)
              << " fwd_ms=" << fwd.median << " fwdbwd_ms=" << fwdBwd.median
              << " update_ms=" << upd.median << " image=" << input[1] << " classes=" << o.classes
              << " params=" << net->parameters().numel() << std::setprecision(1)
              << " start_rss_mb=" << startRssMb << " peak_rss_mb=" << peakRssMb() << "\n";
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    Options o;
    po::options_description desc("tern-bench-train options");
    desc.add_options()("help,h", "this help")(
        "model", po::value(&o.model)->default_value(o.model),
        "lenet5 | vgg7 | resnet20 | resnet32 | resnet44 | resnet56 | resnet18")(
        "width", po::value(&o.width)->default_value(o.width), "channel multiplier")(
        "batch", po::value(&o.batch)->default_value(o.batch), "batch size")(
        "threads", po::value(&o.threads)->default_value(o.threads), "OpenMP threads")(
        "warmup", po::value(&o.warmup)->default_value(o.warmup), "untimed steps")(
        "iters", po::value(&o.iters)->default_value(o.iters), "timed steps (per measurement)")(
        "lr", po::value(&o.lr)->default_value(o.lr), "SGD learning rate")(
        "momentum", po::value(&o.momentum)->default_value(o.momentum), "SGD momentum")(
        "weight-decay", po::value(&o.weightDecay)->default_value(o.weightDecay),
        "L2 weight decay (blocks with decay)")(
        "no-breakdown", "skip the forward / forward+backward / update breakdown")(
        "no-fusion", "no layer fusion across executors (Network::setLayerFusion(false))")(
        "no-pool", "every layer keeps its own gradient buffers (Network::setGradientPooling(false))")(
        "verbose-primitives", "profile a few steps with oneDNN verbose output per primitive")(
        "peak", "first time a large sgemm: the attainable GFLOP/s to compare the convolutions with")(
        "profile-steps", po::value(&o.profileSteps)->default_value(o.profileSteps),
        "steps profiled with --verbose-primitives")(
        "top", po::value(&o.top)->default_value(o.top), "primitives listed in the profile")(
        "seed", po::value(&o.seed)->default_value(o.seed), "data and init seed")(
        "classes", po::value(&o.classes)->default_value(o.classes), "classes of the classifier")(
        "image-size", po::value(&o.imageSize)->default_value(o.imageSize),
        "input height and width (0: 28 for lenet5, 224 for resnet18, 32 otherwise)")(
        "winograd", po::value(&o.winograd)->default_value(o.winograd),
        "auto | onednn | tern | off: Winograd for the 3x3/5x5 layers (auto: oneDNN's for "
        "3x3 on AVX-512, tern's for 5x5 and elsewhere; onednn: direct where oneDNN has none)");
    try {
        po::variables_map vm;
        po::store(po::parse_command_line(argc, argv, desc), vm);
        if (vm.count("help")) {
            std::cout << desc << "\n";
            return 0;
        }
        po::notify(vm);
        o.breakdown = !vm.count("no-breakdown");
        o.fusion = !vm.count("no-fusion");
        o.pool = !vm.count("no-pool");
        o.verbosePrimitives = vm.count("verbose-primitives") > 0;
        o.peak = vm.count("peak") > 0;
        if (o.winograd != "auto" && o.winograd != "onednn" && o.winograd != "tern" &&
            o.winograd != "off")
            throw std::invalid_argument("--winograd: expected auto, onednn, tern or off, got '" +
                                        o.winograd + "'");
        if (o.model != "lenet5" && o.model != "vgg7" && o.model != "resnet18" &&
            !isCifarResnet(o.model))
            throw std::invalid_argument(
                "--model: expected lenet5, vgg7, resnet20, resnet32, resnet44, resnet56 or "
                "resnet18, got '" + o.model + "'");
        if (o.classes < 2 || o.imageSize < 0)
            throw std::invalid_argument("--classes must be >= 2 and --image-size >= 0");
        if (o.batch <= 0 || o.threads <= 0 || o.iters <= 0 || o.warmup < 0 || o.profileSteps <= 0)
            throw std::invalid_argument(
                "--batch, --threads, --iters and --profile-steps must be positive, --warmup >= 0");
        // oneDNN reads DNNL_VERBOSE once, at its first call; keep it off for the timed steps
        // (profilePrimitives() switches it on with dnnl::set_verbose for its own steps).
        if (o.verbosePrimitives) {
            setenv("DNNL_VERBOSE", "0", 1);
            setenv("ONEDNN_VERBOSE", "0", 1);
        }
        return run(o);
    } catch (const std::exception& e) {
        std::cerr << "tern-bench-train: " << e.what() << "\n";
        return 1;
    }
}
