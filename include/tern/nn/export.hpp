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
/// subtractions only ("multiplication-free"). Float layers (first/last unless quantized) keep
/// their float weights and get the same per-channel s_c, b_c (s_c = gamma_c/sqrt(v_c+eps)).
///
/// TernaryModel runs the deployed graph on oneDNN f32 primitives (inference only): conv/inner
/// product on the codes as floats, the per-channel scale and shift as binary post-ops, ReLU as
/// an eltwise post-op, then max pooling. It needs no training configuration.
#include "tern/io/dataset.hpp"
#include "tern/nn/network.hpp"

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace tern::nn {

/// Kinds of layer in a deployed graph.
enum class DeployedKind { Conv, Fc, Relu, Pool };

/// "conv", "fc", "relu", "pool".
std::string kindName(DeployedKind k);

/// One layer of a deployed model.
struct DeployedLayer {
    std::string name;  ///< the trained layer's name ("conv1", "fc2", "relu1", "pool1")
    DeployedKind kind = DeployedKind::Relu;

    // Conv / Fc
    Index in = 0;       ///< input channels (conv) or input features (fc)
    Index out = 0;      ///< output channels / features
    Index kernel = 1;   ///< conv: square kernel; pool: window
    Index stride = 1;   ///< conv / pool stride
    Index padding = 0;  ///< conv padding (both sides)
    Shape weightShape;  ///< OIHW (conv) or {out, in} (fc)
    bool ternary = false;            ///< weights are ternary codes (else float weights)
    std::vector<std::int8_t> codes;  ///< ternary: codes in {-1, 0, +1}, weightShape order
    Vector weights;                  ///< float layers: the trained float weights
    Index groups = 1;                ///< ternary: scale groups (1 = per tensor, out = per filter)
    /// Ternary, per group: magnitude of the negative level relative to the positive one
    /// (1 for sign-symmetric sets; TTQ's Wn/Wp otherwise). Code -1 means -negRatio.
    Vector negRatio;
    Vector groupScale;  ///< ternary, per group: a_g (the positive level; 1 for an all-zero group)
    Vector scale;       ///< per output channel s_c (BN folded)
    Vector bias;        ///< per output channel b_c (BN folded)
    bool foldedBatchNorm = false;     ///< a BN was folded into scale/bias
    bool multiplicationFree = false;  ///< ternary, sign-symmetric and every s_c == 1
    std::string sourceBlock;          ///< "conv1.weights"

    /// Nonzero codes (ternary) or nonzero weights (float).
    Index nonzeros() const;
    /// The weight each code stands for, before s_c: code > 0 -> 1, < 0 -> -negRatio[g].
    Vector effectiveWeights() const;
};

/// Storage and arithmetic of a deployed model, per image.
struct DeployedCost {
    Index multiplications = 0;  ///< per image: float MACs, plus one per output value with s_c != 1
    Index additions = 0;        ///< per image: one per nonzero weight use, plus one per bias
    double storageBits = 0;     ///< payload: 2/weight ternary, 32/float value (weights, s, b, ratios)
    double float32Bits = 0;     ///< the trained network's parameters + BN statistics as float32
    double ternaryBits = 0;     ///< payload of the ternary layers alone
    double ternaryFloat32Bits = 0;  ///< float32 size of the same layers (weights, bias, BN)
};

/// How to find what the checkpoint does not record.
struct ExportOptions {
    /// {C, H, W} of one image. Empty: as recorded in the checkpoint (input/shape), else from
    /// the training data (config data-dir, or `dataDir`), else the dataset's standard size
    /// (mnist 1x28x28, cifar10 3x32x32).
    std::vector<Index> input;
    /// Where the training data lives, for checkpoints that do not record their input shape and
    /// normalization (input/mean, input/std; written by tern-train since 2026-11-23); empty: the
    /// checkpoint's data-dir (or data/<dataset>). Missing data is not an error.
    std::string dataDir;
    /// Relative tolerance of the ternary check: every value must be 0 or within
    /// tolerance * scale of +-level.
    double tolerance = 1e-6;
    /// Also write /layers/<name>/codes as an int8 dataset (for inspection; costs 8 bits/weight).
    bool int8Codes = false;
};

/// Rebuilds the trained network of a tern-train checkpoint from its `config` attributes and
/// loads the deployed parameters (`params/`) and BN running statistics (`net/`): the network
/// TernaryModel::fromCheckpoint folds, in inference mode it is the reference the export must
/// match. If `data` is given and the training data is readable, it receives the normalized
/// dataset (which also fixes the image size). Throws std::runtime_error naming the file.
std::unique_ptr<Network> networkFromCheckpoint(const std::string& checkpoint,
                                               const ExportOptions& options = {},
                                               io::DataSplit* data = nullptr);

/// Packs codes in {-1, 0, +1} into 2 bits each, four per byte, first code in the low bits:
/// byte j holds codes 4j..4j+3, code 4j+k in bits 2k..2k+1; 0 -> 0b00, +1 -> 0b01,
/// -1 -> 0b10 (0b11 is invalid). The last byte is zero-padded. Throws std::invalid_argument
/// for a code outside {-1, 0, 1}.
std::vector<std::uint8_t> packCodes(const std::vector<std::int8_t>& codes);
/// Inverse of packCodes for `count` codes. Throws std::invalid_argument if `packed` has the
/// wrong length or holds 0b11.
std::vector<std::int8_t> unpackCodes(const std::vector<std::uint8_t>& packed, Index count);

/// A deployable ternary network: codes, folded per-channel scales and shifts, and a oneDNN
/// inference path that needs nothing but the model.
class TernaryModel {
public:
    TernaryModel();
    ~TernaryModel();
    TernaryModel(TernaryModel&&) noexcept;
    TernaryModel& operator=(TernaryModel&&) noexcept;

    /// Exports a tern-train checkpoint: rebuilds the network from its config, loads the
    /// deployed parameters and BN statistics, checks every constrained block is ternary
    /// (std::runtime_error "... is not ternary ..." naming the block otherwise) and folds.
    /// Throws std::runtime_error for a missing/corrupt file or a model file given instead.
    static TernaryModel fromCheckpoint(const std::string& checkpoint,
                                       const ExportOptions& options = {});
    /// Folds a live network at its current values (the deployed point) and BN statistics.
    /// Constrained blocks must be ternary (see fromCheckpoint).
    static TernaryModel fromNetwork(const Network& net, double tolerance = 1e-6);
    /// Reads a model file written by save(). std::runtime_error for a missing, truncated or
    /// corrupt file, a checkpoint given instead ("is a tern checkpoint, not a model file"), or
    /// inconsistent contents.
    static TernaryModel load(const std::string& path);
    /// Writes the model file (HDF5, format "tern-model" version 1; docs/export.md)
    /// atomically. With `int8Codes`, also writes the int8 codes beside the packed ones.
    void save(const std::string& path, bool int8Codes = false) const;

    /// Logits (count x classes, row-major), in batches of `batchSize` (the last one padded).
    std::vector<float> logits(const io::Dataset& data, Index batchSize = 100);
    /// Arg-max class per image.
    std::vector<int> predict(const io::Dataset& data, Index batchSize = 100);
    /// Logits of `count` images at `images` (NCHW, already normalized); `out` gets
    /// count x classes values. The plan for `count` is built once and cached.
    void logits(const float* images, Index count, float* out);
    /// Fraction of correctly classified images.
    double accuracy(const io::Dataset& data, Index batchSize = 100);

    const std::vector<DeployedLayer>& layers() const { return layers_; }
    const std::vector<Index>& input() const { return input_; }
    int classes() const { return classes_; }
    /// True if every ternary layer is multiplication-free (and there is at least one).
    bool multiplicationFree() const;
    /// True if every conv/fc layer is ternary and multiplication-free.
    bool fullyMultiplicationFree() const;
    DeployedCost cost() const;

    /// Per-channel input normalization the network was trained with (empty if unknown).
    const std::vector<float>& mean() const { return mean_; }
    const std::vector<float>& stddev() const { return stddev_; }
    /// Provenance copied from the checkpoint config ("model", "method", "alpha", "bn",
    /// "granularity", "dataset", "train-limit", ...), as key/value pairs.
    const std::vector<std::pair<std::string, std::string>>& info() const { return info_; }
    /// One value of info() ("" if absent).
    std::string infoValue(const std::string& key) const;

private:
    struct Engine;
    void check() const;
    std::vector<DeployedLayer> layers_;
    std::vector<Index> input_;
    int classes_ = 0;
    std::vector<float> mean_, stddev_;
    std::vector<std::pair<std::string, std::string>> info_;
    double float32Bits_ = 0;  // the source network's parameters + BN statistics
    std::unique_ptr<Engine> engine_;
};

}  // namespace tern::nn
