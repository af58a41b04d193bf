// tern-train: train a float or ternary network on MNIST, Fashion-MNIST or CIFAR-10.
#include "tern/run/train.hpp"

#include <boost/program_options.hpp>

#include <csignal>
#include <fstream>
#include <iostream>
#include <sstream>
#include <type_traits>

namespace po = boost::program_options;
using tern::Index;

namespace {

void onSignal(int) { tern::run::stopRequested.store(true); }

/// "a,b,c" -> {a, b, c}; empty items are skipped; an item that is not wholly a T is an error
/// naming the flag and the item.
template <class T>
std::vector<T> parseList(const std::string& s, const char* flag, const char* what) {
    std::vector<T> out;
    std::stringstream ss(s);
    std::string item;
    while (std::getline(ss, item, ','))
        if (!item.empty()) {
            std::size_t used = 0;
            T v{};
            try {
                if constexpr (std::is_integral_v<T>) v = static_cast<T>(std::stol(item, &used));
                else v = static_cast<T>(std::stod(item, &used));
            } catch (const std::exception&) {
                used = 0;
            }
            if (used != item.size())
                throw std::invalid_argument(std::string(flag) + ": '" + item + "' is not " + what);
            out.push_back(v);
        }
    return out;
}

}  // namespace

int main(int argc, char** argv) {
    tern::run::TrainConfig c;
    std::string lrSteps, fractions, config, optimizer = "sgd";
    double weightDecay = c.opt.inner.sgd.weightDecay;
    bool noBn = false, noExtragradient = false, noCheckpoint = false, quiet = false, perFilter = false;

    po::options_description data("Data");
    data.add_options()
        ("dataset", po::value(&c.dataset)->default_value(c.dataset), "mnist | fashion-mnist | cifar10")
        ("data-dir", po::value(&c.dataDir), "dataset directory (default data/<dataset>, cifar10: data/cifar-10-batches-bin)")
        ("train-limit", po::value(&c.trainLimit)->default_value(0), "use only the first N training images (0 = all)")
        ("test-limit", po::value(&c.testLimit)->default_value(0), "use only the first N test images (0 = all)");
    po::options_description model("Model");
    model.add_options()
        ("model", po::value(&c.model)->default_value(c.model), "lenet5 | vgg7 | tiny")
        ("width", po::value(&c.width)->default_value(1.0), "channel width multiplier")
        ("no-bn", po::bool_switch(&noBn), "no batch normalization")
        ("dropout", po::value(&c.dropout)->default_value(0.0f), "dropout before the last layer")
        ("loss", po::value(&c.loss)->default_value(c.loss), "ce | hinge | sqhinge")
        ("quantize-first", po::bool_switch(&c.quantizeFirst), "quantize the first layer too")
        ("quantize-last", po::bool_switch(&c.quantizeLast), "quantize the last layer too");
    po::options_description training("Training");
    training.add_options()
        ("epochs", po::value(&c.epochs)->default_value(c.epochs), "epochs")
        ("batch-size", po::value(&c.batchSize)->default_value(c.batchSize), "minibatch size")
        ("lr", po::value(&c.lr)->default_value(c.lr), "initial learning rate")
        ("lr-steps", po::value(&lrSteps), "epochs where lr *= lr-gamma, e.g. 15,25")
        ("lr-gamma", po::value(&c.lrGamma)->default_value(c.lrGamma), "multi-step factor")
        ("lr-schedule", po::value(&c.lrSchedule)->default_value(c.lrSchedule), "multistep | cosine | constant")
        ("optimizer", po::value(&optimizer)->default_value(optimizer), "inner update: sgd | adam")
        ("momentum", po::value(&c.opt.inner.sgd.momentum)->default_value(c.opt.inner.sgd.momentum), "SGD momentum")
        ("weight-decay", po::value(&weightDecay)->default_value(weightDecay), "weight decay (not on biases and BN)")
        ("seed", po::value(&c.seed)->default_value(c.seed), "seed of initialisation, shuffling, augmentation, dropout")
        ("threads", po::value(&c.threads)->default_value(0), "threads (0 = all cores)");
    po::options_description method("Method");
    method.add_options()
        ("method", po::value(&c.method)->default_value(c.method), "fp | bc | bwn | twn | ttq | admm | pgd | rpr | inc")
        ("levels", po::value(&c.levels)->default_value(c.levels), "admm/pgd/rpr level set: ternary | binary | pow2")
        ("bits", po::value(&c.bits)->default_value(c.bits), "pow2: levels a*{0, +-1, ..., +-2^(bits-1)}")
        ("alpha", po::value(&c.alpha)->default_value(c.alpha), "free | one: scale solved or fixed to 1")
        ("exact", po::bool_switch(&c.exact), "twn: exact ternary projection instead of delta = 0.7 mean|W|")
        ("projection", po::value(&c.projection), "explicit projection spec, e.g. ternary:topk,fraction=0.3")
        ("granularity", po::value(&c.granularity)->default_value(c.granularity), "tensor | filter: one scale per tensor or per output filter")
        ("per-filter", po::bool_switch(&perFilter), "shorthand for --granularity filter (e.g. TTQ's Wp, Wn per output filter)")
        ("ttq-threshold", po::value(&c.opt.ttqThreshold)->default_value(c.opt.ttqThreshold), "ttq/inc: threshold t * max|W|")
        ("ttq-scale-lr", po::value(&c.opt.ste.trainableLr)->default_value(c.opt.ste.trainableLr), "ttq/inc: learning-rate factor of the trained scales Wp, Wn")
        ("fractions", po::value(&fractions), "rpr/inc: quantized fraction per stage (default rpr 0.9,0.95,0.975,0.9875,1; inc 0.5,0.75,1)")
        ("stage-epochs", po::value(&c.stageEpochs)->default_value(0), "rpr/inc: epochs per stage, the last lasts to the end (0 = epochs / (stages + 1))")
        ("init", po::value(&c.init), "start from the parameters and BN statistics of a checkpoint (file or run directory), e.g. a float run");
    po::options_description admm("ADMM");
    admm.add_options()
        ("rho", po::value(&c.opt.admm.rho)->default_value(c.opt.admm.rho), "initial penalty")
        ("rho-growth", po::value(&c.opt.admm.rhoGrowth)->default_value(c.opt.admm.rhoGrowth), "rho *= this per outer iteration")
        ("rho-max", po::value(&c.opt.admm.rhoMax)->default_value(c.opt.admm.rhoMax), "cap on rho (>= rho)")
        ("outer-every", po::value(&c.opt.admm.outerEvery)->default_value(c.opt.admm.outerEvery), "epochs per G/U step")
        ("no-extragradient", po::bool_switch(&noExtragradient), "plain SGD W-step (one pass per batch)");
    po::options_description output("Output");
    output.add_options()
        ("out", po::value(&c.outDir), "output directory: metrics.csv, summary.json, checkpoint.h5")
        ("resume", po::bool_switch(&c.resume), "continue from <out>/checkpoint.h5")
        ("no-checkpoint", po::bool_switch(&noCheckpoint), "do not write checkpoints")
        ("eval-batch", po::value(&c.evalBatch)->default_value(c.evalBatch), "batch size of test evaluation")
        ("bn-recalibrate", po::value(&c.bnRecalibrate)->default_value(c.bnRecalibrate), "re-estimate BN statistics at the deployed weights over N batches before each evaluation (-1 = auto: 20 for admm/rpr/inc)")
        ("quiet", po::bool_switch(&quiet), "no progress output")
        ("config", po::value(&config), "INI file with any of these options (flags given on the command line win)")
        ("help,h", "this help");
    po::options_description all("tern-train: train float and ternary networks on oneDNN\n\nUsage: tern-train [options]");
    all.add(data).add(model).add(training).add(method).add(admm).add(output);

    try {
        po::variables_map vm;
        po::store(po::parse_command_line(argc, argv, all), vm);
        if (vm.count("help")) {
            std::cout << all << "\nExample:\n  tern-train --dataset mnist --model lenet5 --method admm "
                         "--epochs 30 --lr-steps 15,25 --out runs/admm\n";
            return 0;
        }
        if (vm.count("config")) {
            const std::string path = vm["config"].as<std::string>();
            std::ifstream f(path);
            if (!f) throw std::invalid_argument("--config: cannot open '" + path + "'");
            po::store(po::parse_config_file(f, all), vm);
        }
        po::notify(vm);
        c.batchNorm = !noBn;
        if (perFilter) {
            if (!vm["granularity"].defaulted() && c.granularity != "filter")
                throw std::invalid_argument("--per-filter contradicts --granularity " + c.granularity);
            c.granularity = "filter";
        }
        c.opt.admm.extragradient = !noExtragradient;
        c.setOptimizer(optimizer);
        c.setWeightDecay(weightDecay);
        c.checkpoint = !noCheckpoint;
        c.lrSteps = parseList<Index>(lrSteps, "--lr-steps", "an epoch number");
        c.fractions = parseList<double>(fractions, "--fractions", "a number");
        c.validate();
    } catch (const std::exception& e) {
        std::cerr << "tern-train: " << e.what() << "\n(see tern-train --help)\n";
        return 1;
    }

    std::signal(SIGINT, onSignal);
    std::signal(SIGTERM, onSignal);
    try {
        const auto r = tern::run::train(c, quiet ? nullptr : &std::cerr);
        if (r.status == "interrupted") {
            if (r.checkpointPath.empty())
                std::cerr << "tern-train: interrupted; no checkpoint was written (--out/--no-checkpoint)\n";
            else
                std::cerr << "tern-train: interrupted; checkpoint written to " << r.checkpointPath
                          << "; continue with --resume\n";
            return 130;
        }
        if (r.status == "diverged") {
            std::cerr << "tern-train: the loss diverged (non-finite) in epoch " << r.epochsCompleted + 1
                      << "; lower --lr."
                      << (r.checkpointPath.empty() ? std::string()
                                                   : " The last good checkpoint is kept in " + r.checkpointPath)
                      << '\n';
            return 2;
        }
        std::cout << "final test accuracy " << r.finalTestAcc * 100 << "% (best "
                  << r.bestTestAcc * 100 << "% at epoch " << r.bestEpoch + 1 << "), "
                  << r.cost.nonzeroWeights << " nonzero weights, " << r.seconds << " s\n";
        return 0;
    } catch (const std::invalid_argument& e) {
        std::cerr << "tern-train: " << e.what() << '\n';
        return 1;
    } catch (const std::exception& e) {
        std::cerr << "tern-train: " << e.what() << '\n';
        return 2;
    }
}
