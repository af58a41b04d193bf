// tern-eval: accuracy, storage and arithmetic of a deployed model (ternary or power-of-two
// codes; docs/export.md).
#include "tern/core/format.hpp"
#include "tern/deploy/model.hpp"
#include "tern/io/dataset.hpp"
#include "tern/io/image_folder.hpp"
#include "tern/nn/layer.hpp"

#include "common/app.hpp"

#include <chrono>
#include <filesystem>
#include <iomanip>
#include <iostream>

namespace po = boost::program_options;
namespace app = tern::app;
using tern::Index;
using namespace tern::deploy;
using tern::nn::setNumThreads;

namespace {

int run(int argc, char** argv) {
    std::string model, checkpoint, dataset, dataDir;
    Index batch = 100, testLimit = 0;
    int threads = 0;
    Index resize = 0;
    std::string badImages = "fail";
    po::options_description desc(
        "tern-eval: evaluate a deployed (ternary or power-of-two) model on a test set\n"
        "Usage: tern-eval --model model.h5 [--dataset mnist --data-dir data/mnist]\n"
        "       tern-eval --checkpoint DIR/checkpoint.h5 (exports in memory first)\nOptions");
    desc.add_options()
        ("help,h", "this help")
        ("model", po::value(&model), "model file written by tern-export")
        ("checkpoint", po::value(&checkpoint), "tern-train checkpoint instead of a model file")
        ("dataset", po::value(&dataset), "mnist | fashion-mnist | cifar10 | folder (default: the model's)")
        ("data-dir", po::value(&dataDir), "dataset directory (default data/<dataset>; folder: required, its val/ is the test set)")
        ("resize", app::withDefault(&resize), "folder: shorter side resized to this before the center crop (0 = the model's, else image size / 0.875)")
        ("bad-images", app::withDefault(&badImages), "folder: fail | skip")
        ("test-limit", app::withDefault(&testLimit), "first N test images (0 = all)")
        ("batch", app::withDefault(&batch), "inference batch size")
        ("threads", app::withDefault(&threads), "threads (0 = all cores)");
    const bool help = app::asUsage([&] {
        po::variables_map vm;
        po::store(po::parse_command_line(argc, argv, desc), vm);
        po::notify(vm);
        if (vm.count("help")) return true;
        if (model.empty() == checkpoint.empty())
            throw std::invalid_argument("give exactly one of --model and --checkpoint");
        if (batch < 1) throw std::invalid_argument("--batch must be > 0");
        return false;
    });
    if (help) {
        std::cout << desc << '\n';
        return app::kExitOk;
    }
    if (const int used = setNumThreads(threads); threads > used)
        std::cerr << "tern-eval: warning: --threads " << threads << " is more than the " << used
                  << " cores this process may use; using " << used << '\n';
    ExportOptions opt;
    opt.dataDir = dataDir;
    TernaryModel m = model.empty() ? TernaryModel::fromCheckpoint(checkpoint, opt)
                                   : TernaryModel::load(model);
    if (dataset.empty()) dataset = m.infoValue("dataset");
    if (dataset.empty()) throw std::invalid_argument("the model names no dataset; give --dataset");
    const bool vmDataDir = !dataDir.empty();
    if (dataDir.empty())
        dataDir = dataset == "cifar10" ? "data/cifar-10-batches-bin" : "data/" + dataset;
    // The test images, normalized as in training: with the model's stored statistics, or
    // recomputed from the training images (first train-limit of them) when it has none.
    tern::io::Dataset test;
    if (dataset == "folder") {  // streamed val/, at the model's image size and normalization
        if (!vmDataDir)
            throw std::invalid_argument("dataset folder needs --data-dir DIR (DIR/train, DIR/val)");
        tern::io::ImageFolderOptions fo;
        fo.imageSize = m.input().at(1);
        if (resize == 0 && !m.infoValue("resize").empty()) fo.set("resize", m.infoValue("resize"));
        if (resize != 0) fo.resize = resize;
        fo.badImages = tern::io::parseBadImages(badImages);
        fo.threads = threads;
        if (m.folding().rawInput) {  // 1/std and the mean folded into the model: raw [0, 1] pixels
            fo.mean = {0, 0, 0};
            fo.stddev = {1, 1, 1};
        } else if (!m.mean().empty()) {
            fo.mean = m.mean();
            fo.stddev = m.stddev();
        }
        test = tern::io::loadImageFolder(dataDir, fo, 0, testLimit).test;
    } else if (!m.mean().empty()) {
        test = dataset == "cifar10" ? tern::io::readCifar10(dataDir, "test")
                                    : tern::io::readIdx(dataDir, "test", dataset + "/test");
        m.prepareInput(test);  // normalized, or raw for a model with 1/std folded in
    } else {
        const std::string tl = m.infoValue("train-limit");
        const std::optional<long long> limit = tl.empty() ? 0LL : tern::parseWholeInteger(tl);
        if (!limit || *limit < 0)
            throw std::runtime_error("the model file's source train-limit is '" + tl +
                                     "', not a count (a corrupt model file?)");
        test = tern::io::loadDataset(dataset, dataDir, static_cast<tern::Index>(*limit)).test;
    }
    if (testLimit > 0 && testLimit < test.count) {
        test.count = testLimit;
        if (!test.source) test.images.resize(static_cast<size_t>(testLimit * test.imageSize()));
        test.labels.resize(static_cast<size_t>(testLimit));
    }
    if (test.count <= 0)
        throw std::runtime_error("the test set of " + dataset + " in " + dataDir +
                                 " is empty: no accuracy can be measured");
    if (test.channels != m.input().at(0) || test.height != m.input().at(1) ||
        test.width != m.input().at(2))
        throw std::runtime_error("the test images in " + dataDir + " are " +
                                 std::to_string(test.channels) + "x" + std::to_string(test.height) +
                                 "x" + std::to_string(test.width) + ", the model takes " +
                                 std::to_string(m.input().at(0)) + "x" + std::to_string(m.input().at(1)) +
                                 "x" + std::to_string(m.input().at(2)));
    const auto t0 = std::chrono::steady_clock::now();
    const double acc = m.accuracy(test, batch);
    const double sec = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const DeployedCost c = m.cost();
    std::cout << std::fixed << std::setprecision(2) << "accuracy " << 100 * acc << "% on "
              << test.count << " " << dataset << " test images (" << std::setprecision(0)
              << static_cast<double>(test.count) / std::max(sec, 1e-9) << " images/s, batch "
              << batch << ")\n";
    if (!model.empty())
        std::cout << "size on disk " << std::filesystem::file_size(model) << " bytes; ";
    std::cout << "storage " << std::setprecision(0) << c.storageBits << " bits ("
              << c.storageBits / 8 << " bytes payload) vs float32 " << c.float32Bits
              << " bits: " << std::setprecision(2) << c.float32Bits / c.storageBits << "x\n";
    std::cout << "per image: " << c.multiplications << " multiplications, " << c.shifts
              << " shifts, " << c.additions << " additions\n";
    std::cout << "multiplication_free " << m.multiplicationFree() << ": ";
    if (m.fullyMultiplicationFree())
        std::cout << "every conv/FC layer is quantized, weights 0 or +-2^k, s_c = 1\n";
    else if (m.multiplicationFree())
        std::cout << "the quantized layers' weights are 0 or +-2^k with s_c = 1 (float "
                     "first/last layers still multiply)\n";
    else
        std::cout << "quantized layers need one multiplication per output value (s_c != 1, or a "
                     "ternary level ratio that is not 2^k)\n";
    const ScaleFolding& f = m.folding();
    if (f.propagated)
        std::cout << "scales propagated to the logits (logits = " << std::setprecision(6)
                  << std::defaultfloat << f.logitScale << " x outputs; argmax ignores it); input "
                  << (f.rawInput ? (f.inputOffset.empty() ? "raw, mean folded into the first layer"
                                                          : "raw minus the mean (additions)")
                                 : "normalized (per-channel std does not fold)")
                  << "\n";
    return app::kExitOk;
}

}  // namespace

int main(int argc, char** argv) { return app::runApp("tern-eval", argc, argv, run); }
