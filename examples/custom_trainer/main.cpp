// A custom training loop around tern: a small CNN trained with ADMM onto ternary weights
// {-a, 0, +a} (one scale per output filter), driven step by step as a user's own trainer would;
// then the same network trained with TWN from the method registry through the library's one
// loop, Optimizer::optimize(), with the training run's callbacks.
#include <tern/tern.hpp>

#include <cstdio>
#include <iostream>
#include <memory>
#include <random>

int main() {
    using namespace tern;
    // Synthetic 3-class data: class c lights up the c-th horizontal band of a 12x12 image.
    auto makeData = [](Index count, std::uint64_t seed) {
        io::Dataset d;
        d.name = "bands";
        d.count = count;
        d.channels = 1;
        d.height = d.width = 12;
        d.numClasses = 3;
        std::mt19937_64 rng(seed);
        std::normal_distribution<float> noise(0.0f, 0.3f);
        for (Index i = 0; i < count; ++i) {
            const int c = static_cast<int>(i % 3);
            d.labels.push_back(c);
            for (Index y = 0; y < 12; ++y)
                for (Index x = 0; x < 12; ++x) d.images.push_back((y / 4 == c ? 1.0f : -0.5f) + noise(rng));
        }
        return d;
    };
    const io::Dataset train = makeData(300, 1), test = makeData(90, 2);

    auto net = nn::tinyCnn({1, 12, 12}, 3);
    net->initialize(1);
    net->setTrainData(train, 30, 1);

    optim::AdmmSettings admm;
    admm.rho = 1e-3;
    admm.rhoGrowth = 1.5;
    optim::TrainSettings schedule;
    schedule.lr = optim::LrSchedule::constant(0.05);
    optim::Admm opt(proj::makeProjection("ternary:exact"), Granularity::PerFilter, admm,
                    optim::SgdSettings{}, schedule);

    opt.begin(*net);
    for (Index epoch = 0; epoch < 4; ++epoch) {
        net->shuffle(opt.rng());
        for (Index b = 0; b < net->numBatches(); ++b) opt.step(*net, b);
        const optim::EpochStats s = opt.endEpoch(*net, epoch);
        optim::ScopedDeploy deployed(opt, *net);  // evaluate at G, the ternary point
        std::printf("epoch %ld: loss %.4f, rho %.2e, primal %.3e, test accuracy %.1f%%\n",
                    static_cast<long>(epoch + 1), s.loss, s.rho, s.primalRes,
                    100 * net->evaluateDataset(test).accuracy);
    }
    opt.deploy(*net);
    const double acc = net->evaluateDataset(test).accuracy;
    std::printf("deployed ternary network: %.1f%% test accuracy\n", 100 * acc);

    // The same network with a method by name: optimize() runs the epochs (lr schedule, shuffle,
    // steps, divergence as a status); EvaluateDeployed measures the ternary point after each.
    auto net2 = nn::tinyCnn({1, 12, 12}, 3);
    net2->initialize(1);
    net2->setTrainData(train, 30, 1);
    optim::MethodConfig method;
    method.method = "twn";  // any name or alias of optim::methods()
    method.granularity = Granularity::PerFilter;
    optim::TrainSettings loop;
    loop.maxEpochs = 4;
    loop.lr = optim::LrSchedule::constant(0.05);
    const std::unique_ptr<optim::Optimizer> twn = optim::makeOptimizer(method, loop);
    run::TrainResult result;
    run::EvaluateDeployed::Settings eval;
    eval.batchSize = 30;
    eval.granularity = method.granularity;
    const optim::TrainReport report = twn->optimize(
        *net2, {std::make_shared<run::EvaluateDeployed>(*net2, test, eval, result),
                std::make_shared<optim::PrintProgress>(std::cout)});
    std::printf("twn (%d levels): %s, %.1f%% test accuracy at the deployed point\n",
                twn->levels(), optim::statusName(report.status).c_str(),
                100 * result.finalTestAcc);
    return acc > 0.8 && result.finalTestAcc > 0.8 ? 0 : 1;
}
