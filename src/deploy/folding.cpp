// BN folding: a trained layer (+ bias + BN) -> codes or float weights with a per-channel scale
// and shift; TernaryModel::fromNetwork folds a whole network (docs/algorithms.md section 9).
#include "tern/deploy/folding.hpp"

#include "tern/core/error.hpp"
#include "tern/deploy/codes.hpp"
#include "tern/deploy/inference.hpp"
#include "tern/deploy/model.hpp"
#include "tern/nn/layers.hpp"
#include "tern/nn/network.hpp"

#include <cmath>
#include <utility>

namespace tern::deploy {

void foldLayer(DeployedLayer& d, const ParameterBlock& w, const ParameterBlock* bias,
               const nn::BatchNorm* bn, double tol) {
    const Index out = d.out;
    const Index per = w.value.size() / out;
    d.weightShape = w.shape;
    d.sourceBlock = w.name;
    d.coding = WeightCoding::Float;
    std::vector<double> a(static_cast<size_t>(out), 1.0);  // a_c: the scale of the codes
    if (w.constrained) {
        QuantizedCodes q = encodeQuantized(w, tol);
        d.coding = q.coding;
        std::vector<double> groupScale;
        if (q.coding == WeightCoding::Ternary) {
            TernaryCodes& t = q.ternary;
            groupScale = t.groupScaleExact;
            d.groups = t.groups;
            d.codes = std::move(t.codes);
            d.groupScale = std::move(t.groupScale);
            d.negRatio = std::move(t.negRatio);
        } else {
            PowerOfTwoCodes& p = q.powerOfTwo;
            groupScale.assign(p.groupScale.data(), p.groupScale.data() + p.groups);  // exact
            d.groups = p.groups;
            d.codes = std::move(p.codes);
            d.groupScale = std::move(p.groupScale);
            d.negRatio = Vector();
            d.exponentMin = p.exponentMin;
            d.exponentMax = p.exponentMax;
        }
        const Index gsize = w.value.size() / d.groups;
        for (Index g = 0; g < d.groups; ++g)
            for (Index c = g * gsize / per; c < (g + 1) * gsize / per; ++c)
                a[c] = groupScale[static_cast<size_t>(g)];
    } else {
        d.weights = w.value;
    }
    // BN folding (algorithms.md section 9):
    //   s_c = gamma_c * a_c / sqrt(v_c + eps),  b_c = beta_c + gamma_c * (bias_c - m_c) / sqrt(v_c
    //   + eps)
    d.scale.resize(out);
    d.bias.resize(out);
    d.foldedBatchNorm = bn != nullptr;
    for (Index c = 0; c < out; ++c) {
        const double b0 = bias ? double(bias->value[c]) : 0.0;
        if (bn) {
            const double k = double(bn->gamma()->value[c]) /
                             std::sqrt(double(bn->runningVar()[c]) + double(bn->epsilon()));
            d.scale[c] = static_cast<Scalar>(k * a[c]);
            d.bias[c] = static_cast<Scalar>(double(bn->beta()->value[c]) +
                                            k * (b0 - double(bn->runningMean()[c])));
        } else {
            d.scale[c] = static_cast<Scalar>(a[c]);
            d.bias[c] = static_cast<Scalar>(b0);
        }
    }
    d.updateMultiplicationFree();
}

TernaryModel TernaryModel::fromNetwork(const nn::Network& net, double tolerance) {
    const char* where = "TernaryModel::fromNetwork()";
    requireInRange(tolerance, 0, 0.5, where, "tolerance");
    std::vector<DeployedLayer> layers;
    const auto& ls = net.layers();
    // map[i]: the deployed layer whose output is trained node i's (-1: the input); -2 = not yet
    std::vector<int> map(ls.size(), -2);
    auto deployed = [&](int j) { return j < 0 ? -1 : map[static_cast<size_t>(j)]; };
    auto last = [&] { return static_cast<int>(layers.size()) - 1; };
    for (size_t i = 0; i < ls.size(); ++i) {
        if (map[i] != -2) continue;  // a BN or gain folded into the layer before
        nn::Layer* layer = ls[i].get();
        // The layer that folds into this one: the next, if it reads only this one and nothing
        // else reads this one (conv -> BN, conv -> gain in every model).
        const nn::Layer* next = nullptr;
        if (i + 1 < ls.size() && net.inputsOf(i + 1) == std::vector<int>{static_cast<int>(i)} &&
            net.consumersOf(i) == std::vector<int>{static_cast<int>(i + 1)})
            next = ls[i + 1].get();
        const auto* bn = dynamic_cast<const nn::BatchNorm*>(next);
        // A fixed gain g after the layer (models without BN): y = g (s (Q x) + b), folded as
        // s <- g s, b <- g b; exact for a power of two (nn::gainForFanIn).
        const auto* gain = dynamic_cast<const nn::Gain*>(next);
        DeployedLayer d;
        d.name = layer->name();
        for (int j : net.inputsOf(i)) d.inputs.push_back(deployed(j));
        if (auto* conv = dynamic_cast<const nn::Conv2d*>(layer)) {
            d.kind = DeployedKind::Conv;
            d.in = conv->inChannels();
            d.out = conv->outChannels();
            d.kernel = conv->kernel();
            d.stride = conv->stride();
            d.padding = conv->padding();
            foldLayer(d, *conv->weights(), conv->bias(), bn, tolerance);
        } else if (auto* fc = dynamic_cast<const nn::Linear*>(layer)) {
            d.kind = DeployedKind::Fc;
            d.in = fc->inFeatures();
            d.out = fc->outFeatures();
            foldLayer(d, *fc->weights(), fc->bias(), bn, tolerance);
        } else if (auto* pool = dynamic_cast<const nn::MaxPool*>(layer)) {
            d.kind = DeployedKind::Pool;
            d.kernel = pool->kernel();
            d.stride = pool->stride();
            d.padding = pool->padding();
        } else if (dynamic_cast<const nn::Relu*>(layer)) {
            d.kind = DeployedKind::Relu;
        } else if (dynamic_cast<const nn::Dropout*>(layer)) {
            map[i] = d.inputs.at(0);  // identity at inference
            continue;
        } else if (auto* add = dynamic_cast<const nn::Add*>(layer)) {
            d.kind = DeployedKind::Add;
            layers.push_back(std::move(d));
            if (add->relu()) {  // the block's closing ReLU, fused in training
                DeployedLayer r;
                r.name = add->name() + ".relu";
                r.kind = DeployedKind::Relu;
                r.inputs = {last()};
                layers.push_back(std::move(r));
            }
            map[i] = last();
            continue;
        } else if (dynamic_cast<const nn::GlobalAvgPool*>(layer)) {
            d.kind = DeployedKind::GlobalPool;
        } else if (auto* sp = dynamic_cast<const nn::SubsamplePad*>(layer)) {
            d.kind = DeployedKind::Shortcut;
            d.in = sp->inChannels();
            d.out = sp->outChannels();
            d.stride = sp->stride();
        } else if (dynamic_cast<const nn::Gain*>(layer)) {
            fail(where, "layer '" + d.name + "' (" + layer->describe() +
                            ") cannot be exported (a gain must follow a conv or FC layer, its only reader)");
        } else {
            fail(where, "layer '" + d.name + "' (" + layer->describe() +
                            ") cannot be exported (BN must follow a conv or FC layer, its only reader)");
        }
        const bool weighted = d.weighted();
        if (gain && weighted) {
            const double g = gain->gain();
            for (Index c = 0; c < d.out; ++c) {
                d.scale[c] = static_cast<Scalar>(g * double(d.scale[c]));
                d.bias[c] = static_cast<Scalar>(g * double(d.bias[c]));
            }
            d.updateMultiplicationFree();
        }
        layers.push_back(std::move(d));
        map[i] = last();
        if (weighted && (gain || bn)) {
            map[i + 1] = last();  // folded
            if (bn && bn->fusedRelu()) {
                DeployedLayer r;
                r.name = bn->name();  // the ReLU that BN+ReLU fused
                r.kind = DeployedKind::Relu;
                r.inputs = {last()};
                layers.push_back(std::move(r));
                map[i + 1] = last();
            }
        }
    }
    // The source network's size: parameters + BN running statistics, as float32.
    double float32Bits = 0;
    for (const ParameterBlock* b : const_cast<nn::Network&>(net).parameters().all())
        float32Bits += 32.0 * static_cast<double>(b->value.size());
    for (const auto& l : ls)
        if (auto* bn = dynamic_cast<const nn::BatchNorm*>(l.get()))
            float32Bits += 32.0 * 2 * static_cast<double>(bn->channels());
    return TernaryModel(std::move(layers), net.inputShape(), net.numClasses(), float32Bits);
}

namespace {

/// One attempt at scale propagation on `layers` (a copy). mode 0: a conv/fc layer with one
/// positive scale for all channels passes it on (P <- s P); 1: every conv/fc layer absorbs
/// its input's factor (P <- 1 after it); 2: as 1, and the input is not folded either. Returns
/// false where the two inputs of an Add carry different factors (their sum would be wrong).
bool propagate(std::vector<DeployedLayer>& layers, const std::vector<Index>& input,
               const std::vector<float>& mean, const std::vector<float>& stddev, int mode,
               ScaleFolding& f) {
    f = ScaleFolding();
    f.propagated = true;
    const Index C = input.at(0);
    bool foldInput = mode < 2 && !mean.empty();
    for (size_t c = 0; foldInput && c < stddev.size(); ++c)
        foldInput = stddev[c] == stddev[0] && std::isfinite(stddev[c]) && stddev[c] > 0;
    // x_n = (x - mean) / std = (1/std) (x - mean): 1/std starts the chain, the mean either
    // folds into the first layer's bias or stays an input offset (additions only).
    double P0 = 1.0;
    if (foldInput) {
        P0 = 1.0 / double(stddev[0]);
        f.rawInput = true;
    }
    Index inputReaders = 0;
    for (const auto& l : layers)
        for (int j : l.inputs) inputReaders += j < 0;
    std::vector<double> P(layers.size(), 1.0);  // the true activations are P times the deployed
    auto factor = [&](int j) { return j < 0 ? P0 : P[static_cast<size_t>(j)]; };
    bool meanPending = foldInput;
    for (size_t i = 0; i < layers.size(); ++i) {
        DeployedLayer& l = layers[i];
        const double Pin = factor(l.inputs.at(0));
        if (l.kind == DeployedKind::Add) {
            if (factor(l.inputs.at(1)) != Pin) return false;
            P[i] = Pin;
            continue;
        }
        if (!l.weighted()) {  // ReLU, max / average pooling, option A commute with P > 0
            P[i] = Pin;
            continue;
        }
        if (meanPending) {
            meanPending = false;
            // Exact only if every input the layer sees is an image pixel: no zero padding (a
            // padded 0 is 0 in normalized space, -mean/std in raw space) and nothing before it.
            if (i == 0 && inputReaders == 1 && (l.kind == DeployedKind::Fc || l.padding == 0)) {
                // s_c (W x_n)_c = s_c P (W x)_c - s_c P (W mean)_c: the second term joins b_c.
                const Vector w = l.effectiveWeights();
                const Index per = w.size() / l.out;
                const Index perChannel = per / C;  // k*k (conv) or H*W (fc, C,H,W flattened)
                for (Index c = 0; c < l.out; ++c) {
                    double acc = 0;
                    for (Index j = 0; j < per; ++j)
                        acc += double(w[c * per + j]) * double(mean[j / perChannel]);
                    l.bias[c] = static_cast<Scalar>(double(l.bias[c]) -
                                                    double(l.scale[c]) * Pin * acc);
                }
            } else {
                f.inputOffset = mean;
            }
        }
        const float s0 = l.scale.size() > 0 ? l.scale[0] : 0.0f;
        const bool uniform =
            mode == 0 && s0 > 0 && std::isfinite(s0) && (l.scale.array() == s0).all();
        if (uniform) {
            // y = s P (W x') + b = (s P) (W x' + b / (s P)): scale 1, the factor moves on.
            const double S = double(s0) * Pin;
            for (Index c = 0; c < l.out; ++c)
                l.bias[c] = static_cast<Scalar>(double(l.bias[c]) / S);
            l.scale.setOnes();
            P[i] = S;
        } else {
            // Per-channel scales cannot move through the next layer's codes: absorb P.
            for (Index c = 0; c < l.out; ++c)
                l.scale[c] = static_cast<Scalar>(double(l.scale[c]) * Pin);
            P[i] = 1.0;
        }
        l.updateMultiplicationFree();
    }
    f.logitScale = P.back();
    return true;
}

}  // namespace

void TernaryModel::propagateScales() {
    if (folding_.propagated) return;
    check();
    // A chain always takes mode 0. In a graph the two inputs of every Add must carry the same
    // factor: if moving uniform scales forward breaks that, every layer absorbs its factor
    // instead (mode 1), and if a factor from the input still reaches an Add unevenly, the
    // input is not folded either (mode 2: every factor 1, always consistent).
    for (int mode = 0; mode < 3; ++mode) {
        std::vector<DeployedLayer> layers = layers_;
        ScaleFolding f;
        if (!propagate(layers, input_, mean_, stddev_, mode, f)) continue;
        layers_ = std::move(layers);
        folding_ = std::move(f);
        engine_.reset();
        return;
    }
}

void TernaryModel::setFolding(ScaleFolding f) {
    const auto channels = static_cast<size_t>(input_.empty() ? 0 : input_[0]);
    if (!f.inputOffset.empty() && (!f.rawInput || f.inputOffset.size() != channels))
        fail("TernaryModel::setFolding()",
             TERN_MSG("an input offset needs raw input and " << channels << " values, got "
                                                              << f.inputOffset.size()));
    if (!(f.logitScale > 0) || !std::isfinite(f.logitScale))
        fail("TernaryModel::setFolding()", TERN_MSG("logit scale " << f.logitScale
                                                                   << " is not positive"));
    if (f.rawInput && mean_.empty())
        fail("TernaryModel::setFolding()", "a raw-input model needs its normalization");
    folding_ = std::move(f);
    engine_.reset();
}

}  // namespace tern::deploy
