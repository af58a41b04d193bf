#include "tern/nn/models.hpp"

#include "tern/core/error.hpp"
#include "tern/nn/layers.hpp"

#include <cmath>

namespace tern::nn {

void ModelOptions::validate() const {
    requirePositive(width, "ModelOptions::validate()", "width");
    requireInRange(dropout, 0, 0.99, "ModelOptions::validate()", "dropout");
}

Shortcut parseShortcut(const std::string& name) {
    if (name == "auto") return Shortcut::Auto;
    if (name == "a") return Shortcut::OptionA;
    if (name == "projection") return Shortcut::Projection;
    throw std::invalid_argument("unknown shortcut '" + name + "'; known: auto, a, projection");
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

namespace {

/// Builds residual networks on a Graph: conv (+ BN + ReLU), basic blocks with identity,
/// option-A or projection shortcuts, global pooling and the classifier.
struct ResBuilder {
    Graph g;
    const ModelOptions& opt;
    int x = Graph::kInput;  // the current node

    ResBuilder(std::vector<Index> input, const ModelOptions& o) : g(std::move(input)), opt(o) {}
    Index channels() const { return g.dims(x)[1]; }
    int add(std::unique_ptr<Layer> l, std::vector<int> in) { return g.add(std::move(l), std::move(in)); }
    /// conv -> BN (+ ReLU) (no conv bias with BN), or conv (+ bias) [-> gain] (-> ReLU).
    int convBn(int from, const std::string& conv, const std::string& bn, Index out, Index k,
               Index stride, bool relu, bool quantize) {
        const Index in = g.dims(from)[1];
        int y = add(std::make_unique<Conv2d>(conv, in, out, k, stride, k / 2, !opt.batchNorm, quantize),
                    {from});
        if (opt.batchNorm) return add(std::make_unique<BatchNorm>(bn, out, 1e-5f, 0.1f, relu), {y});
        if (quantize && opt.gains)
            y = add(std::make_unique<Gain>(conv + ".gain", gainForFanIn(in * k * k)), {y});
        if (relu) y = add(std::make_unique<Relu>(conv + ".relu"), {y});
        return y;
    }
    /// relu(F(x) + shortcut(x)), F = conv3x3-BN-ReLU-conv3x3-BN; the shortcut is x itself, or
    /// (channels or stride change) option A (subsample, zero channels) or a 1x1 conv + BN.
    void basicBlock(const std::string& p, Index out, Index stride, bool projection) {
        const int in = x;
        int y = convBn(in, p + ".conv1", p + ".bn1", out, 3, stride, true, true);
        y = convBn(y, p + ".conv2", p + ".bn2", out, 3, 1, false, true);
        int s = in;
        if (stride != 1 || channels() != out) {
            if (projection) s = convBn(in, p + ".down", p + ".down_bn", out, 1, stride, false, true);
            else s = add(std::make_unique<SubsamplePad>(p + ".shortcut", channels(), out, stride), {in});
        }
        x = add(std::make_unique<Add>(p + ".add", true), {y, s});
    }
    void classifier(int classes) {
        x = add(std::make_unique<GlobalAvgPool>("avgpool"), {x});
        if (opt.dropout > 0) x = add(std::make_unique<Dropout>("dropout", opt.dropout), {x});
        const Index f = channels();
        x = add(std::make_unique<Linear>("fc", f, classes, true, opt.quantizeLast), {x});
        if (opt.quantizeLast && opt.gains && !opt.batchNorm)
            x = add(std::make_unique<Gain>("fc.gain", gainForFanIn(f)), {x});
    }
    void setWeightInit(WeightInit w) {
        for (const auto& l : g.layers())
            if (auto* wl = dynamic_cast<WeightedLayer*>(l.get())) wl->setWeightInit(w);
    }
};

}  // namespace

std::unique_ptr<Network> cifarResnet(int depth, std::vector<Index> input, int classes,
                                     const ModelOptions& opt) {
    opt.validate();
    if (depth < 8 || (depth - 2) % 6 != 0)
        throw std::invalid_argument(TERN_MSG("cifarResnet(): depth " << depth
                                             << " is not 6n + 2 (20, 32, 44, 56, 110, ...)"));
    const int n = (depth - 2) / 6;
    ResBuilder b(std::move(input), opt);
    b.x = b.convBn(Graph::kInput, "conv1", "bn1", scaled(16, opt.width), 3, 1, true,
                   opt.quantizeFirst);
    const Index widths[] = {16, 32, 64};
    for (int s = 0; s < 3; ++s)
        for (int k = 0; k < n; ++k)
            b.basicBlock(TERN_MSG("s" << s + 1 << "b" << k + 1),
                         scaled(widths[s], opt.width), s > 0 && k == 0 ? 2 : 1,
                         opt.shortcut == Shortcut::Projection);
    b.classifier(classes);
    b.setWeightInit(opt.weightInit);
    return std::make_unique<Network>(TERN_MSG("resnet" << depth), std::move(b.g), classes,
                                     opt.loss);
}

std::unique_ptr<Network> resnet18(std::vector<Index> input, int classes, const ModelOptions& opt) {
    opt.validate();
    if (input.size() == 3 && (input[1] < 32 || input[2] < 32))
        throw std::invalid_argument(TERN_MSG("resnet18(): images of " << input[1] << "x" << input[2]
                                             << " are below its 32x32 minimum"));
    ResBuilder b(std::move(input), opt);
    b.x = b.convBn(Graph::kInput, "conv1", "bn1", scaled(64, opt.width), 7, 2, true,
                   opt.quantizeFirst);
    b.x = b.add(std::make_unique<MaxPool>("pool1", 3, 2, 1), {b.x});
    const Index widths[] = {64, 128, 256, 512};
    for (int s = 0; s < 4; ++s)
        for (int k = 0; k < 2; ++k)
            b.basicBlock(TERN_MSG("s" << s + 1 << "b" << k + 1),
                         scaled(widths[s], opt.width), s > 0 && k == 0 ? 2 : 1,
                         opt.shortcut != Shortcut::OptionA);
    b.classifier(classes);
    b.setWeightInit(opt.weightInit);
    return std::make_unique<Network>("resnet18", std::move(b.g), classes, opt.loss);
}

std::vector<std::string> modelNames() {
    return {"lenet5", "gtc-lenet", "vgg7", "vgg16", "tiny", "resnet20", "resnet32", "resnet44",
            "resnet56", "resnet18"};
}

std::unique_ptr<Network> makeModel(const std::string& name, std::vector<Index> input, int classes,
                                   const ModelOptions& opt) {
    if (name == "lenet5") return lenet5(std::move(input), classes, opt);
    if (name == "gtc-lenet") return gtcLenet(std::move(input), classes, opt);
    if (name == "vgg16") return vgg16(std::move(input), classes, opt);
    if (name == "vgg7") return vgg7(std::move(input), classes, opt);
    if (name == "tiny") return tinyCnn(std::move(input), classes, opt);
    if (name == "resnet18") return resnet18(std::move(input), classes, opt);
    for (int depth : {20, 32, 44, 56})
        if (name == "resnet" + std::to_string(depth))
            return cifarResnet(depth, std::move(input), classes, opt);
    std::string known;
    for (const auto& m : modelNames()) known += (known.empty() ? "" : ", ") + m;
    throw std::invalid_argument("makeModel(): unknown model '" + name + "'; known: " + known);
}

}  // namespace tern::nn
