// A residual network of one's own, built from tern's layers on a graph (nn::Graph), trained
// onto ternary weights with TWN from the method registry, then exported: BN folded through the
// blocks, 2-bit codes, and the same predictions from the deployed model.
//
//   build/apps/tern-example-custom-resnet      (exits 0 when the deployed model agrees)
#include <tern/tern.hpp>

#include <cstdio>
#include <iostream>
#include <memory>
#include <random>
#include <string>

using namespace tern;

namespace {

/// 3 classes of 3x16x16 images: class c lights up the c-th horizontal band of channel c.
io::Dataset bands(Index count, std::uint64_t seed) {
    io::Dataset d;
    d.name = "bands";
    d.count = count;
    d.channels = 3;
    d.height = d.width = 16;
    d.numClasses = 3;
    std::mt19937_64 rng(seed);
    std::normal_distribution<float> noise(0.0f, 0.5f);
    for (Index i = 0; i < count; ++i) {
        const int c = static_cast<int>(i % 3);
        d.labels.push_back(c);
        for (Index ch = 0; ch < 3; ++ch)
            for (Index y = 0; y < 16; ++y)
                for (Index x = 0; x < 16; ++x)
                    d.images.push_back((ch == c && y * 3 / 16 == c ? 1.0f : -0.5f) + noise(rng));
    }
    return d;
}

}  // namespace

int main() {
    nn::setNumThreads(2);
    // The graph: a stem, two residual blocks (the second one downsamples, with a 1x1
    // projection on its shortcut), global average pooling and a classifier.
    nn::Graph g({3, 16, 16});
    auto conv = [&](int from, const std::string& name, Index in, Index out, Index k, Index stride,
                    bool relu) {
        const int c = g.add(std::make_unique<nn::Conv2d>(name, in, out, k, stride, k / 2, false), {from});
        return g.add(std::make_unique<nn::BatchNorm>(name + ".bn", out, 1e-5f, 0.1f, relu), {c});
    };
    int x = conv(nn::Graph::kInput, "stem", 3, 16, 3, 1, true);
    // block 1: relu(F(x) + x)
    int y = conv(x, "b1.conv1", 16, 16, 3, 1, true);
    y = conv(y, "b1.conv2", 16, 16, 3, 1, false);
    x = g.add(std::make_unique<nn::Add>("b1.add", /*relu=*/true), {y, x});
    // block 2: relu(F(x) + P(x)), stride 2, 16 -> 32 channels
    y = conv(x, "b2.conv1", 16, 32, 3, 2, true);
    y = conv(y, "b2.conv2", 32, 32, 3, 1, false);
    const int shortcut = conv(x, "b2.down", 16, 32, 1, 2, false);
    x = g.add(std::make_unique<nn::Add>("b2.add", true), {y, shortcut});
    x = g.add(std::make_unique<nn::GlobalAvgPool>("avgpool"), {x});
    g.add(std::make_unique<nn::Linear>("fc", 32, 3, true, /*quantize=*/false), {x});
    nn::Network net("my-resnet", std::move(g), 3);
    // (the first conv is quantized too here: every conv weight block is a target)

    const io::Dataset train = bands(300, 1), test = bands(90, 2);
    net.initialize(1);
    net.setTrainData(train, 30, 1);

    // TWN by name, through the library's one training loop (SGD, momentum 0.9 by default).
    optim::MethodConfig method;
    method.method = "twn";
    optim::TrainSettings loop;
    loop.maxEpochs = 5;
    loop.lr = optim::LrSchedule::constant(0.05);
    const std::unique_ptr<optim::Optimizer> opt = optim::makeOptimizer(method, loop);
    const optim::TrainReport report =
        opt->optimize(net, {std::make_shared<optim::PrintProgress>(std::cout)});
    std::printf("twn: %s\n", optim::statusName(report.status).c_str());
    opt->deploy(net);  // the ternary point
    const double acc = net.evaluateDataset(test).accuracy;

    // Export: BN folded into every conv (the shortcut's too), 2-bit codes, the graph kept.
    deploy::TernaryModel model = deploy::TernaryModel::fromNetwork(net);
    const std::vector<int> want = net.predict(test), got = model.predict(test);
    Index same = 0;
    for (size_t i = 0; i < want.size(); ++i) same += want[i] == got[i];
    const deploy::DeployedCost cost = model.cost();
    std::printf("ternary ResNet: %.1f%% test accuracy; deployed model agrees on %ld of %ld "
                "images; %.1f KiB of weights and scales vs %.1f KiB as float32\n",
                100 * acc, static_cast<long>(same), static_cast<long>(want.size()),
                cost.storageBits / 8192, cost.float32Bits / 8192);
    return acc > 0.9 && same == static_cast<Index>(want.size()) ? 0 : 1;
}
