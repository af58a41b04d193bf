#include "tern/nn/models.hpp"

#include "tern/core/error.hpp"
#include "tern/nn/layers.hpp"

#include <cmath>

namespace tern::nn {

void ModelOptions::validate() const {
    requirePositive(width, "ModelOptions::validate()", "width");
    requireInRange(dropout, 0, 0.99, "ModelOptions::validate()", "dropout");
}

namespace {

/// Appends layers while tracking the current dims, so FC input sizes follow from the input.
struct Builder {
    std::vector<std::unique_ptr<Layer>> layers;
    void setWeightInit(WeightInit w) {
        for (const auto& l : layers)
            if (auto* wl = dynamic_cast<WeightedLayer*>(l.get())) wl->setWeightInit(w);
    }
    dnnl::memory::dims dims;
    const ModelOptions& opt;
    int convs = 0, fcs = 0;

    Builder(std::vector<Index> input, const ModelOptions& o)
        : dims{1, input.at(0), input.at(1), input.at(2)}, opt(o) {}

    void add(std::unique_ptr<Layer> l) {
        dims = l->outputDims(dims);
        layers.push_back(std::move(l));
    }
    /// conv -> bn+relu (fused) or conv -> relu; conv bias only without BN (BN's beta replaces it).
    void conv(Index out, Index k, Index pad, bool quantize) {
        const std::string n = std::to_string(++convs);
        const Index fanIn = dims[1] * k * k;
        add(std::make_unique<Conv2d>("conv" + n, dims[1], out, k, 1, pad, !opt.batchNorm, quantize));
        if (opt.batchNorm) add(std::make_unique<BatchNorm>("bn" + n, out, 1e-5f, 0.1f, true));
        else {
            if (quantize && opt.gains) add(std::make_unique<Gain>("gain" + n, gainForFanIn(fanIn)));
            add(std::make_unique<Relu>("relu" + n));
        }
    }
    void pool() { add(std::make_unique<MaxPool>("pool" + std::to_string(convs), 2, 2)); }
    Index features() const {
        Index f = 1;
        for (size_t i = 1; i < dims.size(); ++i) f *= dims[i];
        return f;
    }
    void fc(Index out, bool quantize) {
        const std::string n = "fc" + std::to_string(++fcs);
        const Index fanIn = features();
        add(std::make_unique<Linear>(n, fanIn, out, !opt.batchNorm, quantize));
        if (opt.batchNorm) add(std::make_unique<BatchNorm>("bn_" + n, out, 1e-5f, 0.1f, true));
        else {
            if (quantize && opt.gains) add(std::make_unique<Gain>("gain_" + n, gainForFanIn(fanIn)));
            add(std::make_unique<Relu>("relu_" + n));
        }
    }
    void classifier(int classes) {
        if (opt.dropout > 0) add(std::make_unique<Dropout>("dropout", opt.dropout));
        const std::string n = "fc" + std::to_string(++fcs);
        const Index fanIn = features();
        add(std::make_unique<Linear>(n, fanIn, classes, true, opt.quantizeLast));
        if (opt.quantizeLast && opt.gains && !opt.batchNorm)
            add(std::make_unique<Gain>("gain_" + n, gainForFanIn(fanIn)));
    }
};

Index scaled(Index c, double width) {
    return std::max<Index>(1, static_cast<Index>(std::lround(static_cast<double>(c) * width)));
}

}  // namespace

namespace {

/// C1-C5, MP2, C2-C5, MP2, F-FC, classes: LeNet-5 and GTC's smaller variant.
std::unique_ptr<Network> lenetShape(const char* name, Index c1, Index c2, Index f,
                                    std::vector<Index> input, int classes, const ModelOptions& opt) {
    opt.validate();
    Builder b(input, opt);
    b.conv(scaled(c1, opt.width), 5, 0, opt.quantizeFirst);
    b.pool();
    b.conv(scaled(c2, opt.width), 5, 0, true);
    b.pool();
    b.fc(scaled(f, opt.width), true);
    b.classifier(classes);
    b.setWeightInit(opt.weightInit);
    return std::make_unique<Network>(name, std::move(b.layers), input, classes, opt.loss);
}

}  // namespace

std::unique_ptr<Network> lenet5(std::vector<Index> input, int classes, const ModelOptions& opt) {
    return lenetShape("lenet5", 32, 64, 512, std::move(input), classes, opt);
}

std::unique_ptr<Network> gtcLenet(std::vector<Index> input, int classes, const ModelOptions& opt) {
    return lenetShape("gtc-lenet", 16, 36, 128, std::move(input), classes, opt);
}

std::unique_ptr<Network> vgg7(std::vector<Index> input, int classes, const ModelOptions& opt) {
    opt.validate();
    Builder b(input, opt);
    b.conv(scaled(128, opt.width), 3, 1, opt.quantizeFirst);
    b.conv(scaled(128, opt.width), 3, 1, true);
    b.pool();
    b.conv(scaled(256, opt.width), 3, 1, true);
    b.conv(scaled(256, opt.width), 3, 1, true);
    b.pool();
    b.conv(scaled(512, opt.width), 3, 1, true);
    b.conv(scaled(512, opt.width), 3, 1, true);
    b.pool();
    b.fc(scaled(1024, opt.width), true);
    b.classifier(classes);
    b.setWeightInit(opt.weightInit);
    return std::make_unique<Network>("vgg7", std::move(b.layers), input, classes, opt.loss);
}

std::unique_ptr<Network> vgg16(std::vector<Index> input, int classes, const ModelOptions& opt) {
    opt.validate();
    Builder b(input, opt);
    // configuration D: 2x64, 2x128, 3x256, 3x512, 3x512, each block ending in a 2x2 max pool
    const std::vector<std::pair<Index, int>> blocks{{64, 2}, {128, 2}, {256, 3}, {512, 3}, {512, 3}};
    bool first = true;
    for (const auto& [channels, convs] : blocks) {
        for (int k = 0; k < convs; ++k) {
            b.conv(scaled(channels, opt.width), 3, 1, first ? opt.quantizeFirst : true);
            first = false;
        }
        b.pool();
    }
    b.fc(scaled(512, opt.width), true);
    b.classifier(classes);
    b.setWeightInit(opt.weightInit);
    return std::make_unique<Network>("vgg16", std::move(b.layers), input, classes, opt.loss);
}

std::unique_ptr<Network> tinyCnn(std::vector<Index> input, int classes, const ModelOptions& opt) {
    opt.validate();
    Builder b(input, opt);
    b.conv(scaled(8, opt.width), 3, 1, opt.quantizeFirst);
    b.pool();
    b.fc(scaled(16, opt.width), true);
    b.classifier(classes);
    b.setWeightInit(opt.weightInit);
    return std::make_unique<Network>("tiny", std::move(b.layers), input, classes, opt.loss);
}

std::vector<std::string> modelNames() { return {"lenet5", "gtc-lenet", "vgg7", "vgg16", "tiny"}; }

std::unique_ptr<Network> makeModel(const std::string& name, std::vector<Index> input, int classes,
                                   const ModelOptions& opt) {
    if (name == "lenet5") return lenet5(std::move(input), classes, opt);
    if (name == "gtc-lenet") return gtcLenet(std::move(input), classes, opt);
    if (name == "vgg16") return vgg16(std::move(input), classes, opt);
    if (name == "vgg7") return vgg7(std::move(input), classes, opt);
    if (name == "tiny") return tinyCnn(std::move(input), classes, opt);
    throw std::invalid_argument("makeModel(): unknown model '" + name +
                                "'; known: lenet5, gtc-lenet, vgg7, vgg16, tiny");
}

}  // namespace tern::nn
