// Quantization statistics and the cost of a deployed network.
#include "tern/run/stats.hpp"

#include "tern/nn/layers.hpp"

#include <algorithm>
#include <cmath>
#include <set>

namespace tern::run {

using nn::BatchNorm;
using nn::Conv2d;
using nn::Layer;
using nn::LayerCost;
using nn::Linear;

std::vector<LayerQuant> quantStats(nn::Network& net, Granularity g) {
    return quantStats(net, [g](const std::string&) { return g; });
}

std::vector<LayerQuant> quantStats(nn::Network& net,
                                   const std::function<Granularity(const std::string& block)>& g) {
    std::vector<LayerQuant> out;
    for (ParameterBlock* b : net.parameters().constrained()) {
        LayerQuant q;
        q.block = b->name;
        q.total = b->value.size();
        q.groups = b->shape.groups(g(b->name));
        const Index per = q.total / q.groups;
        for (Index k = 0; k < q.groups; ++k) {
            std::set<float> distinct;
            float scale = 0;
            for (Index i = k * per; i < (k + 1) * per; ++i) {
                const float v = b->value[i];
                distinct.insert(v == 0.0f ? 0.0f : v);  // -0 and +0 are one value
                q.nonzeros += v != 0.0f;
                scale = std::max(scale, std::abs(v));
            }
            q.maxDistinctPerGroup = std::max<Index>(q.maxDistinctPerGroup, distinct.size());
            q.scales.push_back(scale);
        }
        out.push_back(std::move(q));
    }
    return out;
}

NetworkCost networkCost(nn::Network& net, const std::vector<LayerQuant>& layers, bool hasScale) {
    NetworkCost c;
    const auto& ls = net.layers();
    for (size_t i = 0; i < ls.size(); ++i) {
        const Layer* l = ls[i].get();
        const ParameterBlock* w = nullptr;
        Index outChannels = 0;
        if (auto* conv = dynamic_cast<const Conv2d*>(l)) {
            w = conv->weights();
            outChannels = conv->outChannels();
        } else if (auto* fc = dynamic_cast<const Linear*>(l)) {
            w = fc->weights();
            outChannels = fc->outFeatures();
        } else {
            continue;
        }
        const LayerCost lc = l->cost(net.inputDimsOf(i));
        const Index positions = lc.macs / std::max<Index>(lc.weights, 1);  // output positions
        const bool bnAfter = i + 1 < ls.size() && dynamic_cast<const BatchNorm*>(ls[i + 1].get());
        const auto q = std::find_if(layers.begin(), layers.end(),
                                    [&](const LayerQuant& x) { return x.block == w->name; });
        c.totalWeights += lc.weights;
        if (q == layers.end()) {  // float layer
            c.nonzeroWeights += (w->value.array() != 0.0f).count();
            c.storageBits += 32.0 * static_cast<double>(lc.weights);
            c.multiplications += lc.macs;
            c.additions += lc.macs;
        } else {
            c.nonzeroWeights += q->nonzeros;
            c.storageBits += q->bits * static_cast<double>(q->total) + 32.0 * static_cast<double>(q->groups);
            c.additions += q->nonzeros * positions;  // one add/sub per nonzero weight use
            // One multiply per output value where a scale or a folded BN remains. A per-tensor
            // scale without BN does not remain: export propagates it to the logits
            // (deploy::TernaryModel::propagateScales(), tern-export's default).
            if ((hasScale && q->freeScale && q->groups > 1) || bnAfter) c.multiplications += outChannels * positions;
        }
    }
    // Biases and BN (folded: one scale and one shift per channel) stay float.
    for (const ParameterBlock* b : net.parameters().all())
        if (!b->constrained && b->name.find(".weights") == std::string::npos)
            c.storageBits += 32.0 * static_cast<double>(b->value.size());
    return c;
}

}  // namespace tern::run
