// libFuzzer target: the checkpoint reader (io::CheckpointReader). Opens the input as a
// tern checkpoint and reads everything it lists: every group's children (keys()), every
// dataset's shape and contents through each typed accessor, and every attribute name tern
// writes, on every object, through each typed accessor.
#include "fuzz_util.hpp"
#include "tern/io/checkpoint.hpp"

using namespace tern;

namespace {

/// The attribute names tern writes into checkpoints and model files (h5dump -A of the seed
/// files, plus the names in src/ that a short run does not write); an absent one is skipped.
const char* const kAttrs[] = {
    "alpha", "batch", "batch-size", "batches", "best_epoch", "best_test_acc", "bits", "bn",
    "bn-recalibrate", "checkpoint", "classes", "code_encoding", "coding", "converged", "correct",
    "coupling", "coupling-growth", "coupling-lr", "coupling-max", "data-dir", "dataset",
    "decay-constrained", "diverged", "dropout", "dualRes", "epoch", "epochLoss", "epochSteps",
    "epochs", "exact", "exponent_max", "exponent_min", "extragradient", "final", "final-epochs",
    "flipRatio", "float32_bits",
    "folded_batch_norm", "format", "fraction", "fractions", "freeze", "granularity", "groups",
    "gtc_bits",
    "in", "index", "init", "input_channels", "input_form", "input_height", "input_width",
    "kernel", "latentClip", "layers", "levels", "logit_scale", "loss", "loss_sum", "lr",
    "lr-gamma", "lr-schedule", "lr-steps", "method", "model", "momentum", "multiplication_free",
    "optimizer", "out", "outer", "outer-every", "outer-steps", "padding", "primalRes",
    "projection", "quantize-first", "quantize-last", "quantizer/fc1.weights", "rescale", "rho",
    "rho-growth", "rho-max", "rho-schedule", "rhoGrowth", "rhoMax", "rhoSchedule", "rng", "rule",
    "scales_propagated", "seconds", "seed", "seen", "source_block", "stage", "stage-epochs",
    "step", "stride", "ternary", "test-limit", "threads", "train-limit", "trainableLr",
    "ttq-scale-lr", "ttq-threshold", "type", "version", "weight-decay", "weight-init", "width"};

void attributes(const io::CheckpointReader& r, const std::string& object) {
    for (const char* name : kAttrs) {
        bool present = false;
        fuzz::clean([&] { present = r.hasAttr(object, name); });
        if (!present) continue;
        fuzz::clean([&] { (void)r.attrString(object, name); });
        fuzz::clean([&] { (void)r.attrInt(object, name); });
        fuzz::clean([&] { (void)r.attrDouble(object, name); });
    }
}

void dataset(const io::CheckpointReader& r, const std::string& key) {
    Shape shape;
    bool known = false;
    fuzz::clean([&] {
        shape = r.shape(key);
        known = true;
    });
    if (!known) return;
    fuzz::clean([&] { (void)r.read(key, shape); });
    fuzz::clean([&] { (void)r.readBytes(key, shape); });
    fuzz::clean([&] { (void)r.readSignedBytes(key, shape); });
    fuzz::clean([&] { (void)r.readInts(key); });
}

/// Depth and object count are bounded: a corrupt file may link a group into itself.
void walk(const io::CheckpointReader& r, const std::string& group, int depth, int& budget) {
    if (depth > 12 || --budget < 0) return;
    attributes(r, group);
    std::vector<std::string> children;
    fuzz::clean([&] { children = r.keys(group); });
    for (const std::string& child : children) {
        const std::string key = group.empty() ? child : group + "/" + child;
        bool isGroup = false, isDataset = false;
        fuzz::clean([&] { isGroup = r.hasGroup(key); });
        if (isGroup) {
            walk(r, key, depth + 1, budget);
            continue;
        }
        fuzz::clean([&] { isDataset = r.has(key); });
        if (!isDataset || --budget < 0) continue;
        attributes(r, key);
        dataset(r, key);
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string path = fuzz::writeFile("checkpoint.h5", data, size);
    fuzz::clean([&] {
        const io::CheckpointReader r(path);
        (void)r.version();
        int budget = 2000;
        walk(r, "", 0, budget);
    });
    return 0;
}
