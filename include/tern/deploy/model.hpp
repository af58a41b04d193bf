#pragma once
/// \file Deployment of a trained ternary network (docs/export.md, docs/algorithms.md §9).
///
/// A tern-train checkpoint holds the deployed point (ternary weights a*Q per group) and the BN
/// running statistics. Export folds every batch norm into the layer before it,
///
///   y_c = gamma_c * (a_c * (Q*x)_c + bias_c - m_c) / sqrt(v_c + eps) + beta_c
///       = s_c * (Q*x)_c + b_c,
///   s_c = gamma_c * a_c / sqrt(v_c + eps),
///   b_c = beta_c + gamma_c * (bias_c - m_c) / sqrt(v_c + eps),
///
/// (without BN: s_c = a_c, b_c = bias_c), and keeps the codes Q in {-1, 0, +1} (int8 in memory,
/// 2 bits each in the model file). With a = 1 and no BN, s_c = 1: the layer needs additions and
/// subtractions only ("multiplication-free"). A constrained block that is not ternary but holds
/// a_g * (+-2^e) (GTC, the pow2 sets) keeps sign + exponent codes instead (deploy/codes.hpp),
/// Q in {0, +-2^e}: with s_c = 1 it needs additions and shifts only, also multiplication-free. Float layers (first/last unless quantized) keep
/// their float weights and get the same per-channel s_c, b_c (s_c = gamma_c/sqrt(v_c+eps)).
///
/// TernaryModel runs the deployed graph on oneDNN f32 primitives (deploy/inference.hpp;
/// inference only) and needs no training configuration. Where each part lives:
/// deploy/codes.hpp (ternary check, 2-bit packing), deploy/folding.hpp (BN folding),
/// deploy/rebuild.hpp (checkpoint -> network), deploy/model_file.hpp (the tern-model file).
#include "tern/deploy/layer.hpp"
#include "tern/deploy/rebuild.hpp"
#include "tern/io/dataset.hpp"

#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace tern::nn {
class Network;
}

namespace tern::deploy {

class InferenceEngine;

/// Storage and arithmetic of a deployed model, per image (input normalization and the logit
/// rescale excluded, except the input offset of a raw-input model, which counts as additions).
struct DeployedCost {
    /// per image: float MACs, plus one per output value with s_c != 1, plus one per output
    /// value of a ternary layer whose negative level -r_g is not +-2^k (TTQ: the sum of the
    /// code -1 inputs times r_g)
    Index multiplications = 0;
    /// per image: one per nonzero weight use of a quantized layer whose weight
    /// (effectiveWeights(), before s_c) is +-2^k with k != 0: x * 2^k as a shift (an exponent
    /// add for a float x). A weight +-1 costs none; power-of-two layers, and ternary ones with
    /// r_g = 2^k != 1, have them.
    Index shifts = 0;
    /// per image: one per nonzero weight use, plus one per bias (plus C*H*W for an input offset)
    Index additions = 0;
    /// payload: 2/weight ternary, codeBits()/weight power of two, 32/float value (weights, s,
    /// b, a_g, r_g; 32 per power-of-two layer for its exponent offset)
    double storageBits = 0;
    double float32Bits = 0;     ///< the trained network's parameters + BN statistics as float32
    double ternaryBits = 0;     ///< payload of the quantized (ternary and power-of-two) layers
    double ternaryFloat32Bits = 0;  ///< float32 size of the same layers (weights, bias, BN)
};

/// The checkpoint config keys a model keeps as provenance (info()), in this order: "model",
/// "dataset", "train-limit", "width", "bn", "method", "alpha", "projection", "granularity",
/// "quantize-first", "quantize-last", "epochs", "seed", "shortcut", "resize".
const std::vector<std::string>& infoKeys();

/// Scale propagation (TernaryModel::propagateScales(), docs/export.md section 1): what the
/// deployed network's input and output mean once the per-tensor scales have moved forward.
struct ScaleFolding {
    bool propagated = false;  ///< propagateScales() ran (model-file version >= 2)
    /// The model takes raw images (dataset units, before normalization): 1/std is folded into
    /// the layers. Otherwise it takes images normalized with mean()/stddev().
    bool rawInput = false;
    /// Raw input only: per-channel value subtracted from the raw image before the first layer
    /// (C*H*W additions per image); empty when the mean is folded into the first layer's bias.
    std::vector<float> inputOffset;
    /// The trained network's logits are logitScale times the deployed outputs (> 0: argmax,
    /// and so predict() and accuracy(), ignore it; softmax probabilities and the loss need it).
    double logitScale = 1.0;
};

/// A deployable ternary network: codes, folded per-channel scales and shifts, and a oneDNN
/// inference path that needs nothing but the model.
class TernaryModel {
public:
    TernaryModel();
    /// Assembles a model from its layers, the {C, H, W} of one image and the class count;
    /// `float32Bits` is the size of the source network (cost().float32Bits). A layer with empty
    /// `inputs` reads the layer before it. Throws std::runtime_error "TernaryModel: ..." if the
    /// parts are inconsistent (shapes, code and group counts, an input that is not an earlier
    /// layer, a layer nobody reads, a graph that does not end in `classes` logits).
    TernaryModel(std::vector<DeployedLayer> layers, std::vector<Index> input, int classes,
                 double float32Bits = 0);
    ~TernaryModel();
    TernaryModel(TernaryModel&&) noexcept;
    TernaryModel& operator=(TernaryModel&&) noexcept;

    /// Exports a tern-train checkpoint: rebuilds the network from its config, loads the
    /// deployed parameters and BN statistics, checks every constrained block is ternary or
    /// power-of-two (std::runtime_error "... is not ternary ... and not power-of-two ..." naming
    /// the block otherwise) and folds.
    /// Throws std::runtime_error for a missing/corrupt file or a model file given instead.
    /// (deploy/rebuild.cpp)
    static TernaryModel fromCheckpoint(const std::string& checkpoint,
                                       const ExportOptions& options = {});
    /// Folds a live network at its current values (the deployed point) and BN statistics.
    /// Constrained blocks must be ternary or power-of-two (see fromCheckpoint).
    /// (deploy/folding.cpp)
    static TernaryModel fromNetwork(const nn::Network& net, double tolerance = 1e-6);
    /// Reads a model file written by save(); see deploy::loadModel().
    static TernaryModel load(const std::string& path);
    /// Writes the model file (HDF5, format "tern-model", version 2, or 3 with a power-of-two
    /// layer; docs/export.md) atomically; see deploy::saveModel(). With `int8Codes`, also writes the int8 codes beside
    /// the packed ones.
    void save(const std::string& path, bool int8Codes = false) const;

    /// Moves every positive per-tensor scale forward (docs/export.md section 1): a conv/FC
    /// layer whose s_c are all equal (s > 0) computes y = s P (Q*x + b / (s P)), where P is
    /// the factor its input carries; ReLU and max pooling commute with a positive factor, so
    /// the layer keeps scale 1 and bias b / (s P), and the next layer's input carries s P. A
    /// layer with per-channel scales (BN, per-filter alpha) absorbs P into its s_c (P = 1
    /// after it). The factor left at the logits is folding().logitScale. With the input
    /// normalization known and one std for all channels, 1/std starts the chain (the model
    /// then takes raw images) and the mean folds into the first layer's bias if that layer
    /// has no zero padding; with padding it stays an input offset (additions). A per-channel
    /// std does not fold into ternary codes: the input stays normalized. Idempotent.
    /// Multiplication-free flags are recomputed. fromCheckpoint() calls it by default.
    void propagateScales();
    const ScaleFolding& folding() const { return folding_; }
    /// Sets the propagation state as read from a model file (deploy::loadModel).
    void setFolding(ScaleFolding folding);
    /// Brings raw images (dataset units, as io::readIdx / io::readCifar10 give them) into the
    /// form logits() takes: normalized with mean()/stddev() unless folding().rawInput. Throws
    /// std::runtime_error if the model needs normalized images but has no normalization.
    void prepareInput(io::Dataset& raw) const;

    /// Deployed outputs (count x classes, row-major), in batches of `batchSize` (the last one
    /// padded), for images in the model's input form (prepareInput()). These are the trained
    /// network's logits divided by folding().logitScale (equal to them if nothing was
    /// propagated); with `rescaled`, multiplied back by it.
    std::vector<float> logits(const io::Dataset& data, Index batchSize = 100,
                              bool rescaled = false);
    /// Arg-max class per image.
    std::vector<int> predict(const io::Dataset& data, Index batchSize = 100);
    /// Deployed outputs of `count` images at `images` (NCHW, in the model's input form); `out` gets
    /// count x classes values. The plan for `count` is built once and cached.
    void logits(const float* images, Index count, float* out);
    /// Fraction of correctly classified images.
    double accuracy(const io::Dataset& data, Index batchSize = 100);

    const std::vector<DeployedLayer>& layers() const { return layers_; }
    /// Every layer reads the one before it (no residual connections).
    bool isChain() const;
    /// The layers that read layer i's output.
    std::vector<int> consumersOf(size_t i) const;
    /// Dims of one image after each layer ({C, H, W} or {F}), in layer order.
    std::vector<std::vector<Index>> layerDims(const std::string& where = "TernaryModel") const;
    const std::vector<Index>& input() const { return input_; }
    int classes() const { return classes_; }
    /// True if every quantized (ternary or power-of-two) layer is multiplication-free, i.e.
    /// every weight is 0 or +-2^k and every s_c is 1 after folding (DeployedLayer::
    /// multiplicationFree), and there is at least one.
    bool multiplicationFree() const;
    /// True if every conv/fc layer is quantized and multiplication-free.
    bool fullyMultiplicationFree() const;
    DeployedCost cost() const;
    /// The trained network's parameters + BN statistics as float32 bits (0 if unknown).
    double float32Bits() const { return float32Bits_; }

    /// Per-channel input normalization the network was trained with (empty if unknown).
    const std::vector<float>& mean() const { return mean_; }
    const std::vector<float>& stddev() const { return stddev_; }
    /// Sets the normalization: both empty, or one value per input channel each
    /// (std::invalid_argument otherwise).
    void setNormalization(std::vector<float> mean, std::vector<float> stddev);
    /// Provenance copied from the checkpoint config ("model", "method", "alpha", "bn",
    /// "granularity", "dataset", "train-limit", ...), as key/value pairs.
    const std::vector<std::pair<std::string, std::string>>& info() const { return info_; }
    /// One value of info() ("" if absent).
    std::string infoValue(const std::string& key) const;
    /// Appends one provenance entry.
    void addInfo(const std::string& key, const std::string& value);

    /// Throws std::runtime_error "TernaryModel: ..." if the parts do not fit together (shapes,
    /// code and group counts, a graph that does not end in classes() logits). Every model
    /// built by a constructor or factory has passed it; a default-constructed one fails it.
    void check() const;

private:
    std::vector<DeployedLayer> layers_;
    std::vector<Index> input_;
    int classes_ = 0;
    std::vector<float> mean_, stddev_;
    ScaleFolding folding_;
    std::vector<std::pair<std::string, std::string>> info_;
    double float32Bits_ = 0;  // the source network's parameters + BN statistics
    std::unique_ptr<InferenceEngine> engine_;
};

}  // namespace tern::deploy
