// The training run's callbacks: evaluation at the deployed point, progress, metrics.csv,
// checkpoints.
#include "tern/run/callbacks.hpp"

#include "tern/optim/admm.hpp"
#include "tern/optim/ste.hpp"
#include "tern/proj/gtc.hpp"

#include "tern/core/error.hpp"
#include "tern/core/format.hpp"
#include "tern/io/checkpoint.hpp"
#include "tern/io/integrity.hpp"
#include "tern/proj/projection.hpp"

#include "text_file.hpp"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <limits>
#include <sstream>

namespace tern::run {

namespace {

/// Starts a per-epoch CSV file: the header, and on resume the rows whose epoch (the field
/// `epochColumn`, 0-based) is below `epochsDone` (a resumed run rewrites the rest). What the
/// resumed run finds is checked, never silently accepted: a missing file, or (for a file with
/// one row per epoch) missing epochs, is a warning on stderr naming the lost epochs; a header or
/// a row that is not this file's format is an error naming the file and the line (the file is
/// left as it is). Blank lines are skipped, and an unterminated last line (a write cut short by
/// a crash or a full disk) is dropped.
void restartCsv(const std::string& path, const std::string& header, bool resume, Index epochsDone,
                size_t epochColumn, bool onePerEpoch) {
    std::vector<std::string> keep{header};
    if (resume && epochsDone > 0) {
        std::ifstream in(path, std::ios::binary);
        if (!in) {
            io::warning(TERN_MSG(path << " is missing: the rows of epochs 1-" << epochsDone
                                      << " are lost; the resumed run writes a new file from epoch "
                                      << epochsDone + 1));
        } else {
            const std::string text((std::istreambuf_iterator<char>(in)),
                                   std::istreambuf_iterator<char>());
            const auto fields = static_cast<size_t>(std::count(header.begin(), header.end(), ',')) + 1;
            auto garbled = [&](size_t lineNo, const std::string& line, const std::string& why) {
                throw std::runtime_error(TERN_MSG(
                    "train(): cannot resume: " << path << " line " << lineNo << " ('"
                    << line.substr(0, 60) << (line.size() > 60 ? "..." : "") << "') " << why
                    << "; repair the file or move it away (the resumed run then starts a new one)"));
            };
            std::vector<bool> seen(static_cast<size_t>(epochsDone), false);
            size_t lineNo = 0, pos = 0;
            bool first = true;
            while (pos < text.size()) {
                const size_t nl = text.find('\n', pos);
                if (nl == std::string::npos) break;  // unterminated last line: a cut write
                std::string line = text.substr(pos, nl - pos);
                pos = nl + 1;
                ++lineNo;
                if (!line.empty() && line.back() == '\r') line.pop_back();
                if (line.empty()) continue;
                if (first) {
                    first = false;
                    if (line != header) garbled(lineNo, line, "is not the header of this file");
                    continue;
                }
                if (static_cast<size_t>(std::count(line.begin(), line.end(), ',')) + 1 != fields)
                    garbled(lineNo, line, TERN_MSG("does not have " << fields << " fields"));
                size_t start = 0;
                for (size_t k = 0; k < epochColumn; ++k) start = line.find(',', start) + 1;
                const std::string field = line.substr(start, line.find(',', start) - start);
                const std::optional<long long> parsed = parseWholeInteger(field);
                if (!parsed || *parsed < 0)
                    garbled(lineNo, line, "has no epoch number in column " +
                                              std::to_string(epochColumn + 1));
                const auto e = static_cast<Index>(*parsed);
                if (e < epochsDone) {
                    keep.push_back(line);
                    seen[static_cast<size_t>(e)] = true;
                }
            }
            if (first) garbled(1, text.substr(0, text.find('\n')), "is not the header of this file");
            if (onePerEpoch) {
                std::string lost;
                for (Index e = 0; e < epochsDone; ++e)
                    if (!seen[static_cast<size_t>(e)]) {
                        if (!lost.empty()) lost += ',';
                        lost += std::to_string(e + 1);
                    }
                if (!lost.empty())
                    io::warning(path + " has no rows for epoch(s) " + lost +
                                " (lost before this resume)");
            }
        }
    }
    std::string text;
    for (const auto& l : keep) text += l + '\n';
    try {
        detail::writeFileAtomically(path, text);
    } catch (const std::exception& e) {
        throw std::runtime_error(std::string("train(): ") + e.what());
    }
}

/// Appends rows to a run's CSV file; failures name the file and the reason.
void append(const std::string& path, const std::string& rows) {
    try {
        detail::appendToFile(path, rows);
    } catch (const std::exception& e) {
        throw std::runtime_error(std::string("train(): ") + e.what());
    }
}

using Clock = std::chrono::steady_clock;

std::string csvNum(double v) {
    if (!std::isfinite(v)) return "";
    std::ostringstream o;
    o << std::setprecision(9) << v;
    return o.str();
}

std::string metricsRow(const EpochRecord& r) {
    std::ostringstream o;
    o << r.epoch << ',' << csvNum(r.trainLoss) << ',' << csvNum(r.trainAcc) << ','
      << csvNum(r.testLoss) << ',' << csvNum(r.testAcc) << ',' << csvNum(r.lr) << ','
      << csvNum(r.seconds) << ',' << csvNum(r.imagesPerSecond) << ',' << r.nonzeros << ','
      << csvNum(r.sparsity) << ',' << csvNum(r.flipRatio) << ',' << csvNum(r.primalRes) << ','
      << csvNum(r.dualRes) << ',' << csvNum(r.rho) << ',' << csvNum(r.wp) << ','
      << csvNum(r.wn) << ',' << csvNum(r.freezeFraction);
    return o.str();
}

}  // namespace

// ---------------------------------------------------------------- EvaluateDeployed

EvaluateDeployed::EvaluateDeployed(nn::Network& net, const io::Dataset& test, Settings s,
                                   TrainResult& result)
    : net_(net), test_(test), s_(std::move(s)), result_(result) {}

void EvaluateDeployed::beginEpoch(optim::Optimizer&, optim::Objective&, Index, Index firstBatch) {
    firstBatch_ = firstBatch;
    if (firstBatch == 0) net_.resetTrainMetrics();
}

void EvaluateDeployed::measure(optim::Optimizer& opt, optim::Objective& f, EpochRecord& r) {
    optim::ScopedDeploy d(opt, f);
    net_.recalibrateBatchNorm(s_.recalibrateBatches);
    const nn::Evaluation te = net_.evaluateDataset(test_, s_.evalBatch);
    r.testLoss = te.loss;
    r.testAcc = te.accuracy;
    if (s_.quantized) {
        const Granularity g = s_.granularity;
        result_.layers = s_.granularityOf ? quantStats(net_, s_.granularityOf) : quantStats(net_, g);
        Index nz = 0, total = 0;
        const std::vector<ParameterBlock*> all = net_.parameters().all();
        for (auto& q : result_.layers) {
            nz += q.nonzeros;
            total += q.total;
            // the block's own set (per-layer sets): its levels, name and bits
            const auto slot = static_cast<Index>(
                std::find_if(all.begin(), all.end(), [&](const ParameterBlock* b) { return b->name == q.block; }) -
                all.begin());
            const optim::DeployedSet set = opt.deployedSet(slot);
            q.set = set.name;
            q.bits = std::isfinite(set.bits) ? set.bits : optim::bitsPerWeight(set.levels);
            q.freeScale = set.freeScale;
            if (set.levels > 0 && q.maxDistinctPerGroup > set.levels)
                throw std::runtime_error(TERN_MSG(
                    "train(): deployed block '" << q.block << "' has " << q.maxDistinctPerGroup
                    << " distinct values in one group; the set '"
                    << (set.name.empty() ? s_.setName : set.name) << "' allows " << set.levels));
        }
        r.nonzeros = nz;
        r.sparsity = total ? 1.0 - static_cast<double>(nz) / static_cast<double>(total) : 0;
    }
    result_.cost = networkCost(net_, result_.layers, opt.freeScale());
}

bool EvaluateDeployed::endEpoch(optim::Optimizer& opt, optim::Objective& f,
                                const optim::EpochStats& st) {
    EpochRecord r;
    r.epoch = st.epoch;
    const auto tm = net_.trainMetrics();
    r.trainLoss = tm.loss;
    r.trainAcc = tm.accuracy;
    r.lr = st.lr;
    r.flipRatio = st.flipRatio;
    r.primalRes = st.primalRes;
    r.dualRes = st.dualRes;
    r.rho = st.rho;
    r.freezeFraction = st.freezeFraction;
    r.wp = st.scalePos;
    r.wn = st.scaleNeg;
    r.bits = st.bits;
    r.seconds = st.seconds;
    r.imagesPerSecond = static_cast<double>((net_.numBatches() - firstBatch_) * s_.batchSize) /
                        std::max(r.seconds, 1e-9);
    measure(opt, f, r);
    result_.history.push_back(r);
    result_.finalTestAcc = r.testAcc;
    if (r.testAcc > result_.bestTestAcc || st.epoch == 0) {
        result_.bestTestAcc = r.testAcc;
        result_.bestEpoch = st.epoch;
    }
    result_.epochsCompleted = st.epoch + 1;
    return false;
}

// ---------------------------------------------------------------- ProgressLine

ProgressLine::ProgressLine(std::ostream& out, nn::Network& net, Index epochs, Index batchSize,
                           const TrainResult& result)
    : out_(out),
      net_(net),
      epochs_(epochs),
      batchSize_(batchSize),
      result_(result),
      tty_(&out == &std::cerr && isatty(STDERR_FILENO)) {}

void ProgressLine::beginEpoch(optim::Optimizer&, optim::Objective&, Index, Index) {
    t0_ = Clock::now();
    lossSum_ = 0;
    steps_ = 0;
}

bool ProgressLine::stepTaken(optim::Optimizer& opt, optim::Objective&, Index, double loss) {
    lossSum_ += loss;
    ++steps_;
    const Index nb = net_.numBatches();
    const Index b = opt.stepsInEpoch() - 1;  // the batch just taken
    const Index epoch = opt.epoch();
    if (!(tty_ ? (b % 5 == 0 || b + 1 == nb) : ((b + 1) % std::max<Index>(nb / 5, 1) == 0)))
        return false;
    const double sec = std::chrono::duration<double>(Clock::now() - t0_).count();
    const double ips = static_cast<double>(steps_ * batchSize_) / std::max(sec, 1e-9);
    const double left = static_cast<double>((nb - b - 1) + (epochs_ - epoch - 1) * nb) *
                        static_cast<double>(batchSize_) / std::max(ips, 1e-9);
    const auto tm = net_.trainMetrics();
    std::ostringstream line;
    line << "epoch " << epoch + 1 << "/" << epochs_ << " batch " << b + 1 << "/" << nb << " loss "
         << std::fixed << std::setprecision(4) << lossSum_ / static_cast<double>(steps_) << " acc "
         << std::setprecision(2) << 100 * tm.accuracy << "% " << std::setprecision(0) << ips
         << " img/s ETA " << formatDuration(left);
    if (tty_) {
        out_ << "\r" << line.str() << "\033[K" << std::flush;
        open_ = true;
    } else {
        out_ << line.str() << '\n' << std::flush;
    }
    return false;
}

bool ProgressLine::endEpoch(optim::Optimizer&, optim::Objective&, const optim::EpochStats& st) {
    if (open_) out_ << '\n';
    open_ = false;
    if (result_.history.empty() || result_.history.back().epoch != st.epoch) return false;
    const EpochRecord& r = result_.history.back();
    out_ << "epoch " << r.epoch + 1 << "/" << epochs_ << " done: train loss " << std::fixed
         << std::setprecision(4) << r.trainLoss << " acc " << std::setprecision(2)
         << 100 * r.trainAcc << "%, test acc " << 100 * r.testAcc << "%, lr "
         << std::setprecision(5) << r.lr << ", " << std::setprecision(1) << r.seconds << " s, "
         << std::setprecision(0) << r.imagesPerSecond << " img/s";
    if (!result_.layers.empty())
        out_ << ", nonzeros " << r.nonzeros << " (sparsity " << std::setprecision(3) << r.sparsity
             << ")";
    if (std::isfinite(r.freezeFraction))
        out_ << ", fraction " << std::setprecision(4) << r.freezeFraction;
    if (std::isfinite(r.bits)) out_ << ", bits " << std::setprecision(2) << r.bits;
    if (std::isfinite(r.rho))
        out_ << std::scientific << std::setprecision(2) << ", rho " << r.rho << ", primal "
             << r.primalRes << ", dual " << r.dualRes << std::defaultfloat;
    out_ << std::defaultfloat << '\n' << std::flush;
    return false;
}

void ProgressLine::endOptimization(optim::Optimizer&, optim::Objective&, const optim::TrainReport&) {
    if (open_) out_ << '\n' << std::flush;
    open_ = false;
}

// ---------------------------------------------------------------- MetricsCsv

const char* MetricsCsv::header() {
    return "epoch,train_loss,train_acc,test_loss,test_acc,lr,seconds,images_per_s,nonzeros,"
           "sparsity,flip_ratio,primal_res,dual_res,rho,ttq_wp,ttq_wn,freeze_fraction";
}

MetricsCsv::MetricsCsv(std::string path, const TrainResult& result, bool resume, Index epochsDone)
    : path_(std::move(path)), result_(result) {
    restartCsv(path_, header(), resume, epochsDone, 0, true);
}

bool MetricsCsv::endEpoch(optim::Optimizer&, optim::Objective&, const optim::EpochStats&) {
    append(path_, metricsRow(result_.history.back()) + '\n');
    return false;
}

// ---------------------------------------------------------------- AdmmTrace

AdmmTrace::AdmmTrace(std::string path, bool resume, Index epochsDone) : path_(std::move(path)) {
    restartCsv(path_, "outer,epoch,step,primal_res,dual_res,rho,flip_ratio,coupling", resume,
               epochsDone, 1, false);
}

bool AdmmTrace::endEpoch(optim::Optimizer& opt, optim::Objective&, const optim::EpochStats&) {
    const auto* admm = dynamic_cast<const optim::Admm*>(&opt);
    if (!admm) return false;
    const auto& trace = admm->trace();
    if (trace.size() < written_) written_ = 0;  // begun again
    std::ostringstream m;
    auto num = [](double v) { return std::isfinite(v) ? formatShortest(v) : std::string(); };
    for (; written_ < trace.size(); ++written_) {
        const optim::OuterRecord& r = trace[written_];
        m << r.outer << ',' << r.epoch << ',' << r.step << ',' << num(r.primalRes) << ','
          << num(r.dualRes) << ',' << num(r.rho) << ',' << num(r.flipRatio) << ','
          << num(r.coupling) << '\n';
    }
    append(path_, m.str());
    return false;
}

BitsTrace::BitsTrace(std::string path, bool resume, Index epochsDone) : path_(std::move(path)) {
    restartCsv(path_, "epoch,block,bits,exponent_min,exponent_max,theta1,theta2,nonzeros", resume,
               epochsDone, 0, false);
}

bool BitsTrace::endEpoch(optim::Optimizer& opt, optim::Objective&, const optim::EpochStats& s) {
    auto* ste = dynamic_cast<optim::Ste*>(&opt);
    if (!ste) return false;
    std::ostringstream m;
    for (Index k = 0; k < ste->constrainedBlocks(); ++k) {
        const auto* q = dynamic_cast<const proj::GtcQuantizer*>(&ste->quantizer(k));
        if (!q) continue;
        const proj::GtcBits b = q->bits();  // of the last forward: endEpoch quantized every block
        m << s.epoch << ',' << ste->blockName(k) << ',' << b.bits << ',' << b.minExponent << ','
          << b.maxExponent << ',' << formatShortest(q->theta1()) << ','
          << formatShortest(q->theta2()) << ',' << b.nonzeros << '\n';
    }
    append(path_, m.str());
    return false;
}

// ---------------------------------------------------------------- Checkpointer

namespace {

/// 64-bit mix of 8-byte words (a multiply-xorshift hash; not cryptographic: it tells data sets
/// apart, it does not defend against an adversary).
struct Hash64 {
    std::uint64_t h = 0x9E3779B97F4A7C15ull;
    void word(std::uint64_t w) {
        h ^= w + 0x9E3779B97F4A7C15ull + (h << 6) + (h >> 2);
        h *= 0xBF58476D1CE4E5B9ull;
        h ^= h >> 31;
    }
    void bytes(const void* data, std::size_t n) {
        const auto* p = static_cast<const unsigned char*>(data);
        std::size_t i = 0;
        for (; i + 8 <= n; i += 8) {
            std::uint64_t w;
            std::memcpy(&w, p + i, 8);
            word(w);
        }
        std::uint64_t tail = 0;
        if (n > i) std::memcpy(&tail, p + i, n - i);  // p may be null when n == 0 (a streamed dataset)
        word(tail ^ (static_cast<std::uint64_t>(n) << 56));
    }
    void dataset(const io::Dataset& d) {
        for (Index v : {d.count, d.channels, d.height, d.width, static_cast<Index>(d.numClasses)})
            word(static_cast<std::uint64_t>(v));
        bytes(d.images.data(), d.images.size() * sizeof(float));
        if (d.source) {
            const std::string f = d.source->fingerprint();
            bytes(f.data(), f.size());
        }
        bytes(d.labels.data(), d.labels.size() * sizeof(std::int32_t));
    }
};

}  // namespace

std::string dataFingerprint(const io::DataSplit& data) {
    Hash64 h;
    h.dataset(data.train);
    h.dataset(data.test);
    char out[17];
    std::snprintf(out, sizeof(out), "%016llx", static_cast<unsigned long long>(h.h));
    return out;
}

Checkpointer::Checkpointer(std::string path, const TrainConfig& config, const io::DataSplit& data,
                           nn::Network& net, TrainResult& result, const std::atomic<bool>& stop,
                           std::function<double()> elapsed)
    : path_(std::move(path)),
      config_(config),
      data_(data),
      net_(net),
      result_(result),
      stop_(stop),
      elapsed_(std::move(elapsed)),
      fingerprint_(dataFingerprint(data)) {}

bool Checkpointer::stepTaken(optim::Optimizer& opt, optim::Objective&, Index, double) {
    if (stop_.load()) save(opt, opt.epoch(), opt.stepsInEpoch());  // the run stops after this step
    return false;
}

bool Checkpointer::endEpoch(optim::Optimizer& opt, optim::Objective&, const optim::EpochStats& s) {
    save(opt, s.epoch + 1, 0);
    return false;
}

void Checkpointer::save(optim::Optimizer& opt, Index epoch, Index batch) {
    io::CheckpointWriter w(path_);
    for (const auto& [k, v] : config_.items()) w.attr("config", k, v);
    // the blocks this run quantized (per-layer --projection may differ from the model's
    // defaults): the deploy layer rebuilds the same network from this list
    std::string constrained;
    for (const ParameterBlock* b : net_.parameters().all())
        if (b->constrained) constrained += (constrained.empty() ? "" : ",") + b->name;
    w.attr("layers", "constrained", constrained);
    // what the network was trained on: input C, H, W and the per-channel normalization
    // (export and evaluation need no training data to rebuild and deploy it)
    const auto channels = static_cast<Index>(data_.mean.size());
    Vector shape(3);
    shape << static_cast<Scalar>(data_.train.channels), static_cast<Scalar>(data_.train.height),
        static_cast<Scalar>(data_.train.width);
    w.write("input/shape", shape, Shape{3});
    Vector classes(1);  // the class count (an image folder's need not be 10)
    classes << static_cast<Scalar>(data_.train.numClasses);
    w.write("input/classes", classes, Shape{1});
    w.write("input/mean", Eigen::Map<const Vector>(data_.mean.data(), channels), Shape{channels});
    w.write("input/std", Eigen::Map<const Vector>(data_.stddev.data(), channels), Shape{channels});
    net_.saveState(w, "net/");
    opt.save(w, "optim");
    {
        optim::ScopedDeploy d(opt, net_);  // params/ holds the deployable point
        for (const ParameterBlock* b : net_.parameters().all())
            w.write("params/" + b->name, b->value, b->shape);
    }
    w.attr("data", "fingerprint", fingerprint_);
    w.attr("progress", "epoch", static_cast<std::int64_t>(epoch));
    w.attr("progress", "batch", static_cast<std::int64_t>(batch));
    w.attr("progress", "seconds", elapsed_());
    w.attr("progress", "best_test_acc", result_.bestTestAcc);
    w.attr("progress", "final_test_acc", result_.finalTestAcc);
    w.attr("progress", "best_epoch", static_cast<std::int64_t>(result_.bestEpoch));
    w.close();
    result_.checkpointPath = path_;
}

}  // namespace tern::run
