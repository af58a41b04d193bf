#pragma once
/// \file The configuration of a training run (tern-train's flags): data, model, schedule, and
/// the method with its optimizer's own settings structs (optim::MethodConfig).
#include "tern/core/types.hpp"
#include "tern/io/image_folder.hpp"
#include "tern/optim/methods.hpp"

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace tern::nn {
class Network;
}

namespace tern::run {

/// Everything a training run depends on. Field names follow the CLI flags (camelCase of
/// --kebab-case). The method's hyper-parameters live in `opt`, the settings structs of the
/// optimizers (validated there, with one set of ranges); the fields beside it choose the method
/// and its level set in the CLI's words.
struct TrainConfig {
    // Data
    std::string dataset = "mnist";  ///< mnist | fashion-mnist | cifar10 | folder
    std::string dataDir;            ///< default: data/<dataset> (cifar10: data/cifar-10-batches-bin; folder: required)
    Index trainLimit = 0;           ///< use the first N training images (0 = all)
    Index testLimit = 0;            ///< use the first N test images (0 = all)
    /// dataset folder: image size, eval resize, crop ranges, mean/std, bad-image policy and
    /// loader threads (--image-size, --resize, --crop-scale, --crop-ratio, --mean, --std,
    /// --bad-images, --loader-threads; folder.threads 0 = the run's threads)
    io::ImageFolderOptions folder;
    // Model
    std::string model = "lenet5";   ///< lenet5 | gtc-lenet | vgg7 | vgg16 | tiny
    double width = 1.0;
    bool batchNorm = true;
    float dropout = 0.0f;
    std::string loss = "ce";        ///< ce | hinge | sqhinge
    std::string weightInit = "he";  ///< he (He-normal) | torch (PyTorch's uniform default)
    /// ResNets' shortcut where the shape changes: auto (option A for resnet20-56, projection
    /// for resnet18) | a | projection (nn::Shortcut)
    std::string shortcut = "auto";
    bool quantizeFirst = false, quantizeLast = false;
    // Schedule
    Index epochs = 30;
    Index batchSize = 100;
    double lr = 0.01;
    std::vector<Index> lrSteps;     ///< epochs at which lr *= lrGamma (multi-step)
    double lrGamma = 0.1;
    std::string lrSchedule = "multistep";  ///< multistep | cosine | constant
    std::uint64_t seed = 1;
    int threads = 0;                ///< 0 = OpenMP default
    // Method
    std::string method = "fp";      ///< a name or alias of optim::methods()
    /// The optimizers' settings: inner update (rule, momentum, weight decay), admm, ste
    /// (ttq-scale-lr is ste.trainableLr, also used by inc; bit-penalty is ste.bitPenalty),
    /// ttqThreshold, gtc (gtc-eps is gtc.eps), gtcThetaLr (gtc-theta-lr). Its `method`,
    /// `projection`, `granularity` and partial-quantization schedules are filled in by
    /// methodConfig() from the fields below.
    optim::MethodConfig opt;
    std::string levels = "ternary"; ///< admm/pgd/rpr: ternary | binary | pow2
    int bits = 3;                   ///< pow2: a*{0, +-1, ..., +-2^(bits-1)}
    std::string alpha = "free";     ///< free | one: the scale a is solved or fixed to 1
    bool exact = false;             ///< twn: exact projection instead of delta = 0.7 mean|W|
    /// Explicit makeProjection() spec (overrides levels/alpha), or per layer
    /// (optim::parseProjectionSpec()): "conv2=ternary:exact,fc1=pow2:bits=3/filter,fc2=float";
    /// the layers not named keep the default set (levels/alpha, or a leading plain spec).
    std::string projection;
    std::string granularity = "tensor";  ///< tensor | filter
    /// rpr / inc: quantized fraction per stage (empty = the method's default: rpr 0.9, 0.95,
    /// 0.975, 0.9875, 1; inc 0.5, 0.75, 1).
    std::vector<double> fractions;
    Index stageEpochs = 0;          ///< rpr / inc: epochs per stage (0 = epochs / (stages + 1))
    /// Start from the parameters and BN statistics of this checkpoint (a file, or a run
    /// directory holding checkpoint.h5), e.g. a float run for rpr. Ignored by --resume.
    std::string init;
    /// Knowledge distillation from a frozen teacher: a trained run (its directory or
    /// checkpoint.h5; any model taking the same images and classes). The loss becomes
    /// loss + distillWeight * D_T (nn::Network::setTeacher). Not with gtc's joint teacher.
    std::string teacher;
    /// Weight of the distillation term: with --teacher (default 1), or gtc's lambda1 (default
    /// 0.8, the paper's); -1 = that default.
    double distillWeight = -1;
    double distillTemperature = 1;  ///< T of the distillation term (> 0)
    // Output
    std::string outDir;             ///< metrics.csv, summary.json, checkpoint.h5 (empty = none)
    bool resume = false;            ///< continue from outDir/checkpoint.h5
    Index evalBatch = 500;
    /// Batch-norm running statistics re-estimated at the deployed weights over this many
    /// training minibatches before each evaluation (-1 = auto: 20 where the method does not
    /// train at its deployed point, Optimizer::trainsAtDeployedPoint(): admm, rpr and inc, whose
    /// deployed weights differ from the ones they train; 0 for the others).
    Index bnRecalibrate = -1;
    bool checkpoint = true;         ///< write outDir/checkpoint.h5 after every epoch

    TrainConfig();
    /// Sets the weight decay of both inner rules (SGD and Adam).
    void setWeightDecay(double wd);
    /// Sets the inner rule by name: sgd | adam.
    void setOptimizer(const std::string& name);

    /// Throws std::invalid_argument naming the field (the method's settings: their struct's
    /// validate(), through optim::MethodConfig::validate()).
    void validate() const;
    /// The canonical method name ("bc" for "binaryconnect").
    std::string methodName() const;
    /// The projection spec the method uses ("" for fp / ttq / gtc / inc, which keep only
    /// "layer=float" entries); per-layer entries come after the default set.
    std::string projectionSpec() const;
    /// The method's full configuration: `opt` with method, projection, granularity, the
    /// rescale of fixed-scale sets and the rpr/inc stage schedule resolved.
    optim::MethodConfig methodConfig() const;
    /// The loop settings: epochs, seed, lr schedule.
    optim::TrainSettings trainSettings() const;
    /// key=value lines (also the INI form tern-train reads back, and the checkpoint's config);
    /// the method under its registry name. Throws std::invalid_argument for an unknown method.
    std::vector<std::pair<std::string, std::string>> items() const;
};

/// The per-layer entries of a projection spec on a network (before an optimizer sees its
/// blocks): each entry names a layer with weights ("conv2": its block "conv2.weights") or a
/// block; a set entry constrains it (so naming the first or last layer quantizes it), a float
/// entry leaves it float. An unknown name is std::invalid_argument "<where>: --projection:
/// model M has no layer 'x'; its layers: conv1, ..." (TrainConfig::validate() checks the
/// names on the model before a run reads or writes anything).
void applyLayerSets(nn::Network& net, const std::string& projectionSpec, const std::string& where);

/// Whether a projection spec (plain or per layer) has a set with a fixed scale ("binary",
/// ",scale=one"): such layers without BN get fixed power-of-two gains (nn::ModelOptions::gains)
/// and ADMM/PGD a rescaled start. False for "".
bool hasFixedScaleSet(const std::string& projectionSpec);

}  // namespace tern::run
