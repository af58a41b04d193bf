// tern-train: train a float or ternary network on MNIST, Fashion-MNIST, CIFAR-10 or an image
// folder.
#include "tern/run/recipe.hpp"
#include "tern/run/train.hpp"

#include "common/app.hpp"

#include <algorithm>
#include <csignal>
#include <iostream>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

namespace po = boost::program_options;
namespace app = tern::app;
using tern::Index;

namespace {

void onSignal(int) { tern::run::stopRequested.store(true); }

/// The flag of a settings field a validate() message names ("AdmmSettings::validate(): rhoMax
/// must be >= rho" is about --rho-max), appended to the message so the user sees which flag.
std::string withFlag(const std::string& message) {
    static const std::vector<std::pair<std::string, std::string>> kFlags{
        {"rho", "--rho"}, {"rhoGrowth", "--rho-growth"}, {"rhoMax", "--rho-max"},
        {"outerEvery", "--outer-every"}, {"outerEverySteps", "--outer-steps"},
        {"coupling", "--coupling"}, {"couplingGrowth", "--coupling-growth"},
        {"couplingMax", "--coupling-max"}, {"finalEpochs", "--final-epochs"},
        {"lossAt", "--loss-at"}, {"dualStep", "--dual-step"},
        {"momentum", "--momentum"}, {"weightDecay", "--weight-decay"},
        {"trainableLr", "--ttq-scale-lr"}, {"thresholdFraction", "--ttq-threshold"},
        {"fractions", "--fractions"}, {"stageEpochs", "--stage-epochs"},
        {"eps", "--gtc-eps"}, {"gtcThetaLr", "--gtc-theta-lr"}, {"bitPenalty", "--bit-penalty"},
        {"bitPenaltyEvery", "--bit-penalty-every"}, {"bitPenaltyDecay", "--bit-penalty-decay"},
        {"gtcDistillWeight", "--distill-weight"}, {"distillWeight", "--distill-weight"},
        {"gtcDistillTemperature", "--distill-temperature"},
        {"distillTemperature", "--distill-temperature"},
        {"granularity", "--granularity"},
        {"beta1", "--optimizer adam"}, {"beta2", "--optimizer adam"},
        {"imageSize", "--image-size"}, {"resize", "--resize"}, {"cropScale", "--crop-scale"},
        {"cropRatio", "--crop-ratio"}, {"mean", "--mean"}, {"std", "--std"}};
    const std::size_t at = message.find("): ");
    if (at == std::string::npos) return message;
    const std::size_t start = at + 3, end = message.find(' ', start);
    const std::string field = message.substr(start, end - start);
    for (const auto& [name, flag] : kFlags)
        if (name == field) return message + " (" + flag + ")";
    return message;
}

/// What most likely made a run diverge, from its settings: the step that overshoots is lr
/// times the curvature, and weight decay and ADMM's penalty add lr * wd and lr * rho to it
/// (plain SGD with momentum mu is stable below 2 (1 + mu)).
std::string divergenceHint(const tern::run::TrainConfig& c) {
    const double mu = c.opt.inner.sgd.momentum, limit = 2 * (1 + mu);
    const double wd = c.opt.inner.sgd.weightDecay;
    std::ostringstream o;
    if (c.lr * wd >= limit)
        o << "--weight-decay " << wd << " with --lr " << c.lr << " overshoots on its own (lr * wd = "
          << c.lr * wd << ", stable below " << limit << "): lower --weight-decay";
    else if (c.methodName() == "admm" && c.opt.admm.rhoSchedule != tern::optim::RhoSchedule::Coupling &&
             c.lr * c.opt.admm.rhoMax >= limit)
        o << "ADMM's penalty can reach --rho-max " << c.opt.admm.rhoMax << ", and lr * rho = "
          << c.lr * c.opt.admm.rhoMax << " overshoots (stable below " << limit
          << "): lower --rho/--rho-max, or use --rho-schedule coupling";
    else if (c.methodName() == "gtc")
        o << "lower --lr (now " << c.lr << ") or --gtc-theta-lr (now " << c.opt.gtcThetaLr
          << "): theta2 scales every exponent, and a non-finite theta makes every weight so";
    else
        o << "lower --lr (now " << c.lr << ")"
          << (c.batchNorm ? "" : "; without BN, smaller rates are needed (the recipe uses 0.01)");
    return o.str();
}

int run(int argc, char** argv) {
    tern::run::TrainConfig c;
    std::string lrSteps, fractions, config, optimizer = "sgd", rhoSchedule = "growth",
                extragradient = "true", couplingLr = "current", lossAt = "w", dualLr = "initial",
                gtcTeacher = "none";
    double weightDecay = c.opt.inner.sgd.weightDecay;
    long long seed = static_cast<long long>(c.seed);  // signed: "-1" is an error, not 2^64 - 1
    bool noBn = false, noExtragradient = false, noCheckpoint = false, quiet = false, perFilter = false,
         noRecipe = false;
    std::vector<std::string> recipe;  // the flags the method's recipe filled

    std::string methodHelp;  // the registry's names, with their aliases
    for (const tern::optim::MethodInfo& m : tern::optim::methods()) {
        methodHelp += (methodHelp.empty() ? "" : " | ") + m.name;
        for (size_t i = 0; i < m.aliases.size(); ++i)
            methodHelp += (i ? ", " : " (") + m.aliases[i] + (i + 1 == m.aliases.size() ? ")" : "");
    }

    po::options_description data("Data");
    data.add_options()
        ("dataset", app::withDefault(&c.dataset), "mnist | fashion-mnist | cifar10 | folder")
        ("data-dir", po::value(&c.dataDir), "dataset directory (default data/<dataset>, cifar10: data/cifar-10-batches-bin)")
        ("train-limit", app::withDefault(&c.trainLimit), "use only the first N training images (0 = all)")
        ("test-limit", app::withDefault(&c.testLimit), "use only the first N test images (0 = all)");
    // --dataset folder (docs/data.md): the texts go through ImageFolderOptions::set()
    std::vector<std::pair<std::string, std::string>> folderDefaults = c.folder.items();
    auto folderDefault = [&](const std::string& key) {
        for (const auto& [k, v] : folderDefaults)
            if (k == key) return v;
        return std::string();
    };
    std::string cropScale = folderDefault("crop-scale"), cropRatio = folderDefault("crop-ratio"),
                mean = folderDefault("mean"), stddev = folderDefault("std"),
                badImages = folderDefault("bad-images");
    po::options_description folder("Image folders (--dataset folder --data-dir DIR: DIR/train/<class>/*.jpg|png, DIR/val/<class>/*)");
    folder.add_options()
        ("image-size", app::withDefault(&c.folder.imageSize), "side of the square images the network sees")
        ("resize", app::withDefault(&c.folder.resize), "evaluation: shorter side resized to this, then center crop (0 = image-size / 0.875)")
        ("crop-scale", po::value(&cropScale)->default_value(cropScale), "training: random resized crop's area fraction MIN,MAX")
        ("crop-ratio", po::value(&cropRatio)->default_value(cropRatio), "training: random resized crop's aspect ratio (w/h) MIN,MAX")
        ("mean", po::value(&mean)->default_value(mean), "per-channel mean R,G,B of [0, 1] pixels (ImageNet's)")
        ("std", po::value(&stddev)->default_value(stddev), "per-channel standard deviation R,G,B")
        ("bad-images", po::value(&badImages)->default_value(badImages), "fail (stop, naming the file) | skip (leave out or replace by the next good image of its class, count, name the first few)")
        ("loader-threads", app::withDefault(&c.folder.threads), "decoding threads (0 = --threads)");
    po::options_description model("Model");
    model.add_options()
        ("model", app::withDefault(&c.model), "lenet5 | gtc-lenet | vgg7 | vgg16 | tiny | resnet20 | resnet32 | resnet44 | resnet56 | resnet18")
        ("width", app::withDefault(&c.width), "channel width multiplier")
        ("shortcut", app::withDefault(&c.shortcut), "ResNets' shortcut where the shape changes: auto (option A for resnet20-56, projection for resnet18) | a | projection")
        ("no-bn", po::bool_switch(&noBn), "no batch normalization")
        ("dropout", app::withDefault(&c.dropout), "dropout before the last layer")
        ("loss", app::withDefault(&c.loss), "ce | hinge | sqhinge")
        ("weight-init", app::withDefault(&c.weightInit), "he (He-normal, zero biases) | torch (PyTorch's default: uniform +-1/sqrt(fan-in), biases too; learns faster early in front of BN)")
        ("quantize-first", po::bool_switch(&c.quantizeFirst), "quantize the first layer too")
        ("quantize-last", po::bool_switch(&c.quantizeLast), "quantize the last layer too");
    po::options_description training("Training");
    training.add_options()
        ("epochs", app::withDefault(&c.epochs), "epochs")
        ("batch-size", app::withDefault(&c.batchSize), "minibatch size")
        ("lr", app::withDefault(&c.lr), "initial learning rate")
        ("lr-steps", po::value(&lrSteps), "epochs where lr *= lr-gamma, e.g. 15,25")
        ("lr-gamma", app::withDefault(&c.lrGamma), "multi-step factor")
        ("lr-schedule", app::withDefault(&c.lrSchedule), "multistep | cosine | constant")
        ("optimizer", app::withDefault(&optimizer), "inner update: sgd | adam")
        ("momentum", app::withDefault(&c.opt.inner.sgd.momentum), "SGD momentum")
        ("weight-decay", app::withDefault(&weightDecay), "weight decay (not on biases and BN)")
        ("seed", app::withDefault(&seed), "seed of initialisation, shuffling, augmentation, dropout")
        ("threads", app::withDefault(&c.threads), "threads (0 = all cores)");
    po::options_description method("Method");
    method.add_options()
        ("method", app::withDefault(&c.method), methodHelp.c_str())
        ("levels", app::withDefault(&c.levels), "admm/pgd/rpr level set: ternary | binary | pow2")
        ("bits", app::withDefault(&c.bits), "pow2: levels a*{0, +-1, ..., +-2^(bits-1)}")
        ("alpha", app::withDefault(&c.alpha), "free | one: scale solved or fixed to 1")
        ("exact", po::bool_switch(&c.exact), "twn: exact ternary projection instead of delta = 0.7 mean|W|")
        ("projection", po::value(&c.projection), "explicit projection spec, e.g. ternary:topk,fraction=0.3; or per layer: conv2=ternary:exact,fc1=pow2:bits=3/filter,fc2=float (name=set[/tensor|filter]; layers not named keep the default set, a leading plain spec or --levels/--alpha; naming the first/last layer quantizes it, float leaves a layer float; ttq/gtc/inc take only float entries)")
        ("granularity", app::withDefault(&c.granularity), "tensor | filter: one scale per tensor or per output filter")
        ("per-filter", po::bool_switch(&perFilter), "shorthand for --granularity filter (e.g. TTQ's Wp, Wn per output filter)")
        ("ttq-threshold", app::withDefault(&c.opt.ttqThreshold), "ttq/inc: threshold t * max|W|")
        ("ttq-scale-lr", app::withDefault(&c.opt.ste.trainableLr), "ttq/inc: learning-rate factor of the trained scales Wp, Wn")
        ("gtc-eps", app::withDefault(&c.opt.gtc.eps), "gtc: weights with |w| <= eps * max|w| of their layer are 0 (2^-7)")
        ("gtc-theta-lr", app::withDefault(&c.opt.gtcThetaLr), "gtc: learning-rate factor of the trained theta1, theta2")
        ("bit-penalty", app::withDefault(&c.opt.ste.bitPenalty), "gtc: lambda2, the weight of the bit cost sum_layers 2^bits in the loss")
        ("bit-penalty-every", app::withDefault(&c.opt.ste.bitPenaltyEvery), "gtc: lambda2 *= --bit-penalty-decay every N steps (0 = constant; the paper: 10000)")
        ("bit-penalty-decay", app::withDefault(&c.opt.ste.bitPenaltyDecay), "gtc: the factor of that schedule, (0, 1]")
        ("gtc-teacher", po::value(&gtcTeacher)->default_value("none"), "gtc: joint (the paper: a float teacher at W trained beside the student, loss L(teacher) + lambda1 D + lambda2 B) | none (the student alone on its own loss: the STE / STE+Bit baselines)")
        ("teacher", po::value(&c.teacher), "distil from this trained run (directory or checkpoint; frozen; any model on the same images): loss + --distill-weight * T^2 CE(softmax(teacher/T), softmax(student/T))")
        ("distill-weight", app::withDefault(&c.distillWeight), "weight of the distillation term: with --teacher (-1 = 1), or gtc's lambda1 with --gtc-teacher joint (-1 = 0.8)")
        ("distill-temperature", app::withDefault(&c.distillTemperature), "temperature T of the distillation term")
        ("fractions", po::value(&fractions), "rpr/inc: quantized fraction per stage (default rpr 0.9,0.95,0.975,0.9875,1; inc 0.5,0.75,1)")
        ("stage-epochs", app::withDefault(&c.stageEpochs), "rpr/inc: epochs per stage, the last lasts to the end (0 = epochs / (stages + 1))")
        ("init", po::value(&c.init), "start from the parameters and BN statistics of a checkpoint (file or run directory), e.g. a float run");
    po::options_description admm("ADMM");
    admm.add_options()
        ("rho", app::withDefault(&c.opt.admm.rho), "initial penalty")
        ("rho-growth", app::withDefault(&c.opt.admm.rhoGrowth), "rho *= this per outer iteration")
        ("rho-max", app::withDefault(&c.opt.admm.rhoMax), "cap on rho (>= rho)")
        ("outer-every", app::withDefault(&c.opt.admm.outerEvery), "epochs per G/U step")
        ("outer-steps", app::withDefault(&c.opt.admm.outerEverySteps), "steps per G/U step instead (0 = per --outer-every epochs)")
        ("rho-schedule", app::withDefault(&rhoSchedule), "growth (rho *= rho-growth per G/U step) | coupling (rho follows lr: the penalty closes a fraction --coupling of W - (G - U) per G/U step) | constant")
        ("coupling", app::withDefault(&c.opt.admm.coupling), "coupling schedule: first fraction, (0, 1)")
        ("coupling-growth", app::withDefault(&c.opt.admm.couplingGrowth), "coupling schedule: factor per G/U step (0 = auto: --coupling-max by the last lr drop, else by the final phase)")
        ("coupling-max", app::withDefault(&c.opt.admm.couplingMax), "coupling schedule: cap, < 1")
        ("coupling-lr", po::value(&couplingLr)->default_value("current"), "coupling schedule: rho from the current lr (an lr drop raises rho: the codes settle) | initial (rho ignores lr drops: the codes keep moving)")
        ("decay-constrained", po::bool_switch(&c.opt.admm.decayConstrained), "weight decay on the constrained W too (off: it fights the penalty)")
        ("final-epochs", app::withDefault(&c.opt.admm.finalEpochs), "last N epochs at G: codes frozen; scales, biases, BN and float layers train")
        ("extragradient", po::value(&extragradient)->default_value("true"), "W-step: true (extragradient: predictor and corrector, two passes per batch) | false (plain SGD on the augmented loss); the from-scratch recipe uses false")
        ("no-extragradient", po::bool_switch(&noExtragradient), "same as --extragradient false")
        ("dual-step", app::withDefault(&c.opt.admm.dualStep), "U-step size gamma: U += gamma (W - G), in [0, 1.618); 0 = no multiplier (quadratic penalty)")
        ("dual-lr", po::value(&dualLr)->default_value("initial"), "U-step: initial (gamma fixed) | current (gamma x lr/lr0: the outer loop slows with the lr, so the codes settle as the steps shrink)")
        ("loss-at", po::value(&lossAt)->default_value("w"), "W-step's loss gradient: w (at W, ADMM as written) | projection (at P(W + U), recomputed each step: the network trains at the point the next G-step deploys; needs --extragradient false)");
    po::options_description output("Output");
    output.add_options()
        ("out", po::value(&c.outDir), "output directory: metrics.csv, summary.json, checkpoint.h5")
        ("resume", po::bool_switch(&c.resume), "continue from <out>/checkpoint.h5")
        ("no-checkpoint", po::bool_switch(&noCheckpoint), "do not write checkpoints")
        ("eval-batch", app::withDefault(&c.evalBatch), "batch size of test evaluation")
        ("bn-recalibrate", app::withDefault(&c.bnRecalibrate), "re-estimate BN statistics at the deployed weights over N batches before each evaluation (-1 = auto: 20 for admm/rpr/inc)")
        ("quiet", po::bool_switch(&quiet), "no progress output")
        ("no-recipe", po::bool_switch(&noRecipe), "plain defaults instead of the method's recipe for the flags not given (lr, lr-steps, weight-decay, dropout, ttq-threshold, admm's rho schedule and final epochs; docs/results.md)")
        ("config", po::value(&config), "INI file with any of these options (flags given on the command line win)")
        ("help,h", "this help");
    po::options_description all("tern-train: train float and ternary networks on oneDNN\n\nUsage: tern-train [options]");
    all.add(data).add(folder).add(model).add(training).add(method).add(admm).add(output);

    const bool help = app::asUsage([&] {
        po::variables_map vm;
        po::store(po::parse_command_line(argc, argv, all), vm);
        if (vm.count("help")) return true;
        app::loadConfig(vm, all);  // --config FILE; flags on the command line win
        po::notify(vm);
        if (seed < 0) throw std::invalid_argument("--seed must be >= 0 (got " + std::to_string(seed) + ")");
        c.seed = static_cast<std::uint64_t>(seed);
        c.batchNorm = !noBn;
        if (perFilter) {
            if (!vm["granularity"].defaulted() && c.granularity != "filter")
                throw std::invalid_argument("--per-filter contradicts --granularity " + c.granularity);
            c.granularity = "filter";
        }
        if (extragradient != "true" && extragradient != "false")
            throw std::invalid_argument("--extragradient must be true or false (got '" + extragradient + "')");
        if (noExtragradient && !vm["extragradient"].defaulted() && extragradient == "true")
            throw std::invalid_argument("--no-extragradient contradicts --extragradient true");
        c.opt.admm.extragradient = extragradient == "true" && !noExtragradient;
        if (couplingLr != "current" && couplingLr != "initial")
            throw std::invalid_argument("--coupling-lr must be current or initial (got '" + couplingLr + "')");
        c.opt.admm.couplingFollowsLr = couplingLr == "current";
        c.opt.admm.rhoSchedule = tern::optim::AdmmSettings::parseSchedule(rhoSchedule);
        if (lossAt != "w" && lossAt != "projection")
            throw std::invalid_argument("--loss-at must be w or projection (got '" + lossAt + "')");
        c.opt.admm.lossAt = tern::optim::AdmmSettings::parseLossAt(lossAt);
        if (dualLr != "current" && dualLr != "initial")
            throw std::invalid_argument("--dual-lr must be current or initial (got '" + dualLr + "')");
        c.opt.admm.dualFollowsLr = dualLr == "current";
        if (gtcTeacher != "joint" && gtcTeacher != "none")
            throw std::invalid_argument("--gtc-teacher must be joint or none (got '" + gtcTeacher + "')");
        c.opt.gtcJointTeacher = gtcTeacher == "joint";
        c.setOptimizer(optimizer);
        c.folder.set("crop-scale", cropScale);
        c.folder.set("crop-ratio", cropRatio);
        c.folder.set("mean", mean);
        c.folder.set("std", stddev);
        c.folder.set("bad-images", badImages);
        c.setWeightDecay(weightDecay);
        c.checkpoint = !noCheckpoint;
        c.lrSteps = app::parseList<Index>(lrSteps, "--lr-steps", "an epoch number");
        c.fractions = app::parseList<double>(fractions, "--fractions", "a number");
        if (!noRecipe)  // the method's measured defaults for what was not given
            recipe = tern::run::applyRecipe(c, [&](const std::string& flag) {
                if (flag == "extragradient" && noExtragradient) return true;
                return vm.count(flag) && !vm[flag].defaulted();
            });
        try {
            c.validate();
        } catch (const std::invalid_argument& e) {
            throw std::invalid_argument(withFlag(e.what()));
        }
        return false;
    });
    if (help) {
        std::cout << all << "\nExample:\n  tern-train --dataset mnist --model lenet5 --method admm "
                     "--epochs 30 --lr-steps 15,25 --out runs/admm\n";
        return app::kExitOk;
    }

    if (!quiet && !recipe.empty()) {
        std::cerr << "tern-train: the " << c.methodName() << " recipe for what was not given:";
        for (const auto& [k, v] : c.items())
            if (std::find(recipe.begin(), recipe.end(), k) != recipe.end()) std::cerr << " --" << k << " " << v;
        std::cerr << " (--no-recipe: plain defaults)\n";
    }
    std::signal(SIGINT, onSignal);
    std::signal(SIGTERM, onSignal);
    const auto r = tern::run::train(c, quiet ? nullptr : &std::cerr);
    if (r.status == "interrupted") {
        if (r.checkpointPath.empty())
            std::cerr << "tern-train: interrupted; no checkpoint was written (--out/--no-checkpoint)\n";
        else
            std::cerr << "tern-train: interrupted; checkpoint written to " << r.checkpointPath
                      << "; continue with --resume\n";
        return app::kExitInterrupted;
    }
    if (r.status == "diverged") {
        std::cerr << "tern-train: the loss diverged (non-finite) in epoch " << r.epochsCompleted + 1
                  << "; " << divergenceHint(c) << '.' 
                  << (r.checkpointPath.empty() ? std::string()
                                               : " The last good checkpoint is kept in " + r.checkpointPath)
                  << '\n';
        return app::kExitFailed;
    }
    std::cout << "final test accuracy " << r.finalTestAcc * 100 << "% (best " << r.bestTestAcc * 100
              << "% at epoch " << r.bestEpoch + 1 << "), " << r.cost.nonzeroWeights
              << " nonzero weights, " << r.seconds << " s\n";
    return app::kExitOk;
}

}  // namespace

int main(int argc, char** argv) { return app::runApp("tern-train", argc, argv, run); }
