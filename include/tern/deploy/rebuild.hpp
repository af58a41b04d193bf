#pragma once
/// \file The trained network of a tern-train checkpoint, rebuilt from its `config` attributes:
/// what TernaryModel::fromCheckpoint folds, and the reference an export must match.
#include "tern/io/dataset.hpp"
#include "tern/nn/network.hpp"

#include <memory>
#include <string>
#include <vector>

namespace tern::deploy {

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
    /// Move the per-tensor scales (and 1/std, the mean where exact) forward to the logits
    /// (TernaryModel::propagateScales()); false: per-layer BN folding only, as model version 1.
    bool propagateScales = true;
};

/// Rebuilds the trained network of a tern-train checkpoint from its `config` attributes and
/// loads the deployed parameters (`params/`) and BN running statistics (`net/`): the network
/// TernaryModel::fromCheckpoint folds, in inference mode it is the reference the export must
/// match. If `data` is given and the training data is readable, it receives the normalized
/// dataset (which also fixes the image size). Throws std::runtime_error naming the file.
std::unique_ptr<nn::Network> networkFromCheckpoint(const std::string& checkpoint,
                                                   const ExportOptions& options = {},
                                                   io::DataSplit* data = nullptr);

}  // namespace tern::deploy
