// tern-train's per-method default recipes.
#include "tern/run/recipe.hpp"

#include <algorithm>

namespace tern::run {

std::vector<std::string> applyRecipe(TrainConfig& c,
                                     const std::function<bool(const std::string&)>& given) {
    std::vector<std::string> set;
    auto fill = [&](const char* flag, auto&& assign) {
        if (given(flag)) return;
        assign();
        set.emplace_back(flag);
    };
    const bool fineTune = !c.init.empty();
    const std::string method = c.methodName();
    if (c.lrSchedule == "multistep" && c.epochs >= 4)
        fill("lr-steps", [&] {
            c.lrSteps = {c.epochs / 2, c.epochs * (fineTune ? 4 : 3) / (fineTune ? 5 : 4)};
        });
    if (method == "gtc") {
        // the paper's (seed 004): Adam, a float teacher sharing W, lambda1 = 0.8, lambda2 = 0.04
        // divided by 10 five times over the run (its Figure 3: every 10k of ~50k iterations).
        // Measured on gtc-lenet, MNIST, 30 epochs (docs/gtc.md): a tenth every 10k steps (1.8
        // decays in 30 epochs) leaves lambda2 so high that every layer ends binary (98.6%); a
        // sixth of the run per decay reached 99.2% at 2.75 bits.
        fill("optimizer", [&] { c.setOptimizer("adam"); });
        fill("lr", [&] { c.lr = 1e-3; });
        fill("weight-decay", [&] { c.setWeightDecay(0); });
        fill("gtc-teacher", [&] { c.opt.gtcJointTeacher = c.teacher.empty(); });
        fill("bit-penalty", [&] { c.opt.ste.bitPenalty = 0.04; });
        fill("bit-penalty-every", [&] {
            const Index images = c.trainLimit > 0 ? c.trainLimit : c.dataset == "cifar10" ? 50000 : 60000;
            const Index steps = c.epochs * std::max<Index>(1, images / std::max<Index>(1, c.batchSize));
            c.opt.ste.bitPenaltyEvery = std::max<Index>(1, steps / 6);
        });
    }
    if (c.model == "lenet5") {  // measured on MNIST and Fashion-MNIST (docs/results.md)
        if (method != "gtc") {
            fill("lr", [&] { c.lr = fineTune || !c.batchNorm ? 0.01 : 0.05; });
            fill("weight-decay", [&] { c.setWeightDecay(5e-4); });
        }
        if (c.batchNorm) fill("dropout", [&] { c.dropout = 0.3f; });
    }
    if (c.model.rfind("resnet", 0) == 0 && method != "gtc") {
        // He et al. 2016 (CIFAR ResNets, section 4.2; also TTQ's and ADMM's ResNet runs): SGD
        // with momentum 0.9, batch 128, lr 0.1 divided by 10 at 50% and 75% of the run,
        // weight decay 1e-4; fine-tuning from --init at lr 0.01.
        fill("lr", [&] { c.lr = fineTune ? 0.01 : 0.1; });
        fill("weight-decay", [&] { c.setWeightDecay(1e-4); });
        fill("batch-size", [&] { c.batchSize = 128; });
    }
    if (method == "ttq") fill("ttq-threshold", [&] { c.opt.ttqThreshold = fineTune ? 0.05 : 0.2; });
    if (method == "admm") {
        if (fineTune) {
            fill("rho", [&] { c.opt.admm.rho = 1e-2; });
            fill("rho-growth", [&] { c.opt.admm.rhoGrowth = 1.6; });
            // without BN the extragradient diverges (lr L > 1 along sharp directions)
            if (!c.batchNorm) fill("extragradient", [&] { c.opt.admm.extragradient = false; });
        } else {
            fill("rho-schedule", [&] { c.opt.admm.rhoSchedule = optim::RhoSchedule::Coupling; });
            fill("coupling-growth", [&] { c.opt.admm.couplingGrowth = 0; });
            // measured: G/U every 100 steps beats once per epoch at the deployed point (MNIST,
            // multiplication-free LeNet-5: 98.5 against 97.9 after 4 epochs; docs/results.md)
            fill("outer-steps", [&] { c.opt.admm.outerEverySteps = 100; });
            // measured: the plain W-step is as good from scratch with BN at half the cost, and
            // the extragradient diverges without BN (docs/results.md, issue 15)
            fill("extragradient", [&] { c.opt.admm.extragradient = false; });
            // measured, 3 seeds (docs/results.md, issue 15): with a free scale, rho blind to lr
            // drops and a final phase of E/5 epochs are better or equal in every cell (Fashion
            // ternary +0.24, no BN +0.4, multiplication-free MNIST +0.26 and Fashion +1.17);
            // with alpha = 1 they were not (MNIST 99.36 against 99.39 with BN, 98.88 against
            // 99.03 without), so alpha one keeps rho from the current lr and E/10 epochs at G
            const bool freeScale = c.alpha != "one";
            // measured, 3 seeds, MNIST 30 epochs (docs/results.md, issue 15): on the
            // multiplication-free network (no BN, every layer quantized) the loss at P(W + U)
            // with a U-step that slows with the lr holds 99.0+ where the loss at W ends at 98.5
            // (its codes dither after the lr drops)
            if (!c.batchNorm && c.quantizeFirst && c.quantizeLast) {
                fill("loss-at", [&] { c.opt.admm.lossAt = optim::LossAt::Projection; });
                fill("dual-lr", [&] { c.opt.admm.dualFollowsLr = true; });
            }
            if (freeScale) fill("coupling-lr", [&] { c.opt.admm.couplingFollowsLr = false; });
            fill("final-epochs", [&] {
                c.opt.admm.finalEpochs = std::max<Index>(1, c.epochs / (freeScale ? 5 : 10));
            });
        }
    }
    return set;
}

}  // namespace tern::run
