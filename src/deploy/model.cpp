// TernaryModel: consistency of the deployed graph, its cost, and inference through the engine.
#include "tern/deploy/model.hpp"

#include "tern/core/error.hpp"
#include "tern/deploy/codes.hpp"
#include "tern/deploy/inference.hpp"
#include "tern/nn/loss.hpp"

#include <cmath>
#include <algorithm>
#include <stdexcept>

namespace tern::deploy {

const std::vector<std::string>& infoKeys() {
    static const std::vector<std::string> keys{
        "model", "dataset", "train-limit", "width", "bn", "method", "alpha", "projection",
        "granularity", "quantize-first", "quantize-last", "epochs", "seed", "shortcut", "resize"};
    return keys;
}

TernaryModel::TernaryModel() = default;
TernaryModel::~TernaryModel() = default;
TernaryModel::TernaryModel(TernaryModel&&) noexcept = default;
TernaryModel& TernaryModel::operator=(TernaryModel&&) noexcept = default;

TernaryModel::TernaryModel(std::vector<DeployedLayer> layers, std::vector<Index> input, int classes,
                           double float32Bits)
    : layers_(std::move(layers)),
      input_(std::move(input)),
      classes_(classes),
      float32Bits_(float32Bits) {
    for (size_t i = 0; i < layers_.size(); ++i)
        if (layers_[i].inputs.empty()) layers_[i].inputs = {static_cast<int>(i) - 1};
    check();
}

bool TernaryModel::isChain() const {
    for (size_t i = 0; i < layers_.size(); ++i)
        if (layers_[i].inputs != std::vector<int>{static_cast<int>(i) - 1}) return false;
    return true;
}

std::vector<int> TernaryModel::consumersOf(size_t i) const {
    std::vector<int> c;
    for (size_t j = i + 1; j < layers_.size(); ++j)
        for (int k : layers_[j].inputs)
            if (k == static_cast<int>(i)) c.push_back(static_cast<int>(j));
    return c;
}

std::vector<std::vector<Index>> TernaryModel::layerDims(const std::string& where) const {
    std::vector<std::vector<Index>> dims;
    for (size_t i = 0; i < layers_.size(); ++i) {
        const DeployedLayer& l = layers_[i];
        std::vector<std::vector<Index>> in;
        const std::vector<int> inputs =
            l.inputs.empty() ? std::vector<int>{static_cast<int>(i) - 1} : l.inputs;
        for (int j : inputs) {
            if (j < -1 || j >= static_cast<int>(i))
                throw std::runtime_error(where + ": layer '" + l.name + "' reads layer " +
                                         std::to_string(j) + ", not an earlier one (or -1, the input)");
            in.push_back(j < 0 ? input_ : dims[static_cast<size_t>(j)]);
        }
        dims.push_back(l.outputDimsAll(in, where));
    }
    return dims;
}

std::string TernaryModel::infoValue(const std::string& key) const {
    for (const auto& [k, v] : info_)
        if (k == key) return v;
    return "";
}

void TernaryModel::addInfo(const std::string& key, const std::string& value) {
    info_.emplace_back(key, value);
}

void TernaryModel::setNormalization(std::vector<float> mean, std::vector<float> stddev) {
    const auto channels = static_cast<size_t>(input_.empty() ? 0 : input_[0]);
    if (mean.size() != stddev.size() || (!mean.empty() && mean.size() != channels))
        fail("TernaryModel::setNormalization()",
             TERN_MSG("expected " << channels << " means and standard deviations (or none), got "
                                  << mean.size() << " and " << stddev.size()));
    for (size_t c = 0; c < mean.size(); ++c)
        if (!std::isfinite(mean[c]) || !std::isfinite(stddev[c]) || !(stddev[c] > 0))
            fail("TernaryModel::setNormalization()",
                 TERN_MSG("channel " << c << " has mean " << mean[c] << " and standard deviation "
                                     << stddev[c] << " (finite, and a deviation > 0, expected)"));
    mean_ = std::move(mean);
    stddev_ = std::move(stddev);
}

bool TernaryModel::multiplicationFree() const {
    bool any = false;
    for (const auto& l : layers_) {
        if (!l.weighted() || !l.quantized()) continue;
        if (!l.multiplicationFree) return false;
        any = true;
    }
    return any;
}

bool TernaryModel::fullyMultiplicationFree() const {
    bool any = false;
    for (const auto& l : layers_) {
        if (!l.weighted()) continue;
        if (!l.quantized() || !l.multiplicationFree) return false;
        any = true;
    }
    return any;
}

void TernaryModel::check() const {
    const std::string where = "TernaryModel";
    if (input_.size() != 3 || input_[0] < 1 || input_[1] < 1 || input_[2] < 1)
        throw std::runtime_error(where + ": input must be C, H, W > 0 (got " + dimsString(input_) +
                                 ")");
    if (classes_ < 1) throw std::runtime_error(where + TERN_MSG(": classes is " << classes_));
    if (layers_.empty()) throw std::runtime_error(where + ": no layers");
    const std::vector<std::vector<Index>> all = layerDims(where);
    for (size_t i = 0; i + 1 < layers_.size(); ++i)
        if (consumersOf(i).empty())
            throw std::runtime_error(where + ": the output of layer '" + layers_[i].name +
                                     "' is read by no later layer");
    for (const auto& l : layers_) {
        if (l.weighted()) {
            const Index n = l.weightShape.size();
            const Index want =
                l.kind == DeployedKind::Conv ? l.out * l.in * l.kernel * l.kernel : l.out * l.in;
            if (n != want || l.weightShape.filters() != l.out)
                throw std::runtime_error(where + ": layer '" + l.name + "' has weight shape " +
                                         l.weightShape.str() +
                                         TERN_MSG(", expected " << want << " weights"));
            if (l.scale.size() != l.out || l.bias.size() != l.out)
                throw std::runtime_error(where + ": layer '" + l.name + "' needs " +
                                         std::to_string(l.out) + " scales and biases");
            if (l.quantized()) {
                if (static_cast<Index>(l.codes.size()) != n || l.groups < 1 ||
                    l.out % l.groups != 0 || l.groupScale.size() != l.groups ||
                    l.negRatio.size() != (l.ternary() ? l.groups : 0))
                    throw std::runtime_error(where + ": layer '" + l.name +
                                             "' has inconsistent codes or groups");
                if (l.ternary()) {
                    for (const std::int8_t c : l.codes)
                        if (c < -1 || c > 1)
                            throw std::runtime_error(where + ": layer '" + l.name +
                                                     TERN_MSG("' has the ternary code " << int(c)));
                } else {
                    // every code's weight 2^(m + |code| - 1) a nonzero, finite float
                    const long range = long(l.exponentMax) - long(l.exponentMin) + 1;
                    if (range < 1 || range > kMaxPowerOfTwoExponents || l.exponentMin < -149 ||
                        l.exponentMax > 127)
                        throw std::runtime_error(
                            where + ": layer '" + l.name +
                            TERN_MSG("' has the exponents " << l.exponentMin << ".." << l.exponentMax
                                                            << " (1 to " << kMaxPowerOfTwoExponents
                                                            << " of them within -149..127 expected)"));
                    for (const std::int8_t c : l.codes)
                        if (std::abs(int(c)) > range)
                            throw std::runtime_error(where + ": layer '" + l.name +
                                                     TERN_MSG("' has the code " << int(c) << ", above its "
                                                                                << range << " exponents"));
                }
            } else if (l.weights.size() != n) {
                throw std::runtime_error(where + ": layer '" + l.name + "' has " +
                                         std::to_string(l.weights.size()) + " weights, expected " +
                                         std::to_string(n));
            }
        }
    }
    const std::vector<Index>& dims = all.back();
    if (dims.size() != 1 || dims[0] != classes_)
        throw std::runtime_error(where + ": the network ends in " + dimsString(dims) +
                                 TERN_MSG(" values, expected " << classes_ << " logits"));
}

DeployedCost TernaryModel::cost() const {
    DeployedCost c;
    c.float32Bits = float32Bits_;
    if (!folding_.inputOffset.empty()) c.additions += input_.at(0) * input_.at(1) * input_.at(2);
    const std::vector<std::vector<Index>> dims = layerDims("TernaryModel::cost()");
    for (size_t i = 0; i < layers_.size(); ++i) {
        const DeployedLayer& l = layers_[i];
        const std::vector<Index>& o = dims[i];
        Index elements = 1;
        for (Index d : o) elements *= d;
        if (l.kind == DeployedKind::Add) c.additions += elements;
        if (l.kind == DeployedKind::GlobalPool) {
            const std::vector<Index>& src = l.inputs[0] < 0 ? input_ : dims[size_t(l.inputs[0])];
            c.additions += src[0] * src[1] * src[2];
            c.multiplications += src[0];  // the mean's 1 / (H W)
        }
        if (!l.weighted()) continue;
        const Index positions = l.kind == DeployedKind::Conv ? o[1] * o[2] : 1;
        const Index n = l.weightShape.size();
        const double channelBits = 32.0 * 2 * static_cast<double>(l.out);  // s_c, b_c
        const double srcBits = 32.0 * static_cast<double>(n + (l.foldedBatchNorm ? 4 : 1) * l.out);
        if (l.quantized()) {
            const double bits = static_cast<double>(l.codeBits()) * static_cast<double>(n) +
                                channelBits + 32.0 * static_cast<double>(l.groups) +
                                32.0 * static_cast<double>(l.negRatio.size()) +
                                (l.powerOfTwo() ? 32.0 : 0.0);  // a_g, r_g, the exponent offset
            c.storageBits += bits;
            c.ternaryBits += bits;
            c.ternaryFloat32Bits += srcBits;
            // One add/sub per nonzero weight use, one add per output value for b_c.
            c.additions += (l.nonzeros() + l.out) * positions;
            // The weights' products: none for +-1, a shift for +-2^k, else (a ternary r_g) one
            // multiplication per output value, on the sum of the code -1 inputs.
            const Vector w = l.effectiveWeights();
            const Index per = n / l.groups;
            Index shifted = 0;
            std::vector<bool> multiplies(static_cast<size_t>(l.groups), false);
            for (Index j = 0; j < n; ++j) {
                const double x = std::abs(double(w[j]));
                if (x == 0 || x == 1) continue;
                int e = 0;
                if (std::frexp(x, &e) == 0.5) ++shifted;
                else multiplies[static_cast<size_t>(j / per)] = true;
            }
            c.shifts += shifted * positions;
            const Index outPerGroup = l.out / l.groups;
            for (Index g = 0; g < l.groups; ++g)
                if (multiplies[static_cast<size_t>(g)]) c.multiplications += outPerGroup * positions;
            if (l.scaled()) c.multiplications += l.out * positions;  // s_c
        } else {
            c.storageBits += 32.0 * static_cast<double>(n) + channelBits;
            const Index macs = n * positions;
            c.multiplications += macs + (l.scaled() ? l.out * positions : 0);
            c.additions += macs + l.out * positions;
        }
    }
    return c;
}

void TernaryModel::prepareInput(io::Dataset& raw) const {
    if (folding_.rawInput) return;
    if (mean_.empty())
        throw std::runtime_error(
            "TernaryModel::prepareInput(): the model takes normalized images but has no stored "
            "normalization");
    io::normalize(raw, mean_, stddev_);
}

std::vector<float> TernaryModel::logits(const io::Dataset& data, Index batchSize, bool rescaled) {
    if (data.channels != input_.at(0) || data.height != input_.at(1) || data.width != input_.at(2))
        fail("TernaryModel::logits()",
             TERN_MSG("dataset '" << data.name << "' has images " << data.channels << "x"
                                  << data.height << "x" << data.width << ", the model expects "
                                  << dimsString(input_)));
    requirePositive(static_cast<double>(batchSize), "TernaryModel::logits()", "batchSize");
    const Index b = std::min(batchSize, std::max<Index>(data.count, 1));
    const Index img = data.imageSize();
    std::vector<float> out(static_cast<size_t>(data.count * classes_));
    std::vector<float> buf(static_cast<size_t>(b * img), 0.0f);
    std::vector<float> res(static_cast<size_t>(b * classes_));
    for (Index start = 0; start < data.count; start += b) {
        const Index n = std::min(b, data.count - start);
        io::readImages(data, start, n, buf.data());
        std::fill(buf.begin() + n * img, buf.end(), 0.0f);
        logits(buf.data(), b, res.data());
        std::copy(res.begin(), res.begin() + n * classes_, out.begin() + start * classes_);
    }
    if (rescaled && folding_.logitScale != 1.0)
        for (float& v : out) v = static_cast<float>(double(v) * folding_.logitScale);
    return out;
}

void TernaryModel::logits(const float* images, Index count, float* out) {
    requirePositive(static_cast<double>(count), "TernaryModel::logits()", "count");
    if (layers_.empty()) fail("TernaryModel::logits()", "the model is empty");
    if (!engine_) engine_ = std::make_unique<InferenceEngine>();
    const float* s = engine_->run(*this, images, count);
    std::copy(s, s + count * classes_, out);
}

std::vector<int> TernaryModel::predict(const io::Dataset& data, Index batchSize) {
    return nn::argmaxRows(logits(data, batchSize), data.count, classes_);
}

double TernaryModel::accuracy(const io::Dataset& data, Index batchSize) {
    if (data.count == 0) return 0;
    const std::vector<int> p = predict(data, batchSize);
    Index correct = 0;
    for (Index i = 0; i < data.count; ++i) correct += p[i] == data.labels[i];
    return static_cast<double>(correct) / static_cast<double>(data.count);
}

}  // namespace tern::deploy
