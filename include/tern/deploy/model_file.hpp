#pragma once
/// \file The model file: HDF5, root attributes format "tern-model" and version 2 or 3, written
/// and read through io::CheckpointWriter / io::CheckpointReader (docs/export.md lists every
/// dataset and attribute). Per conv / FC layer: /layers/<name>/codes_packed (uint8: 2 bits per
/// ternary code, `bits` bits per power-of-two code; deploy/codes.hpp), scale, bias,
/// weight_shape, group_scale and neg_ratio (ternary), group_scale (power of two) or weights
/// (float), optionally codes (int8); per layer the attributes type, index, coding, bits and its
/// geometry; the provenance under /source; the input normalization under /normalization.
/// Version 2 adds the scale propagation (root attributes scales_propagated, input_form,
/// logit_scale; /normalization/offset); version 1 files load as unpropagated models. Version 3
/// adds power-of-two layers (coding "pow2", exponent_min, exponent_max); a file is written as
/// version 3 only if it has one, so ternary models stay readable by version-2 builds.
#include "tern/deploy/model.hpp"

#include <string>

namespace tern::deploy {

/// The `format` attribute of a model file.
inline constexpr const char* kModelFormat = "tern-model";
/// The newest model-file version this build writes and reads (4: graphs, i.e. residual
/// networks: each layer's `inputs`, the add / gap / shortcut layers, pool padding; 3:
/// power-of-two layers; a chain without either is written as version 2, a chain with
/// power-of-two layers as version 3, so that older builds keep reading what they can).
inline constexpr int kModelVersion = 4;

/// Writes `model` to `path` atomically (via `path + ".tmp"`; an existing file is replaced
/// only by a complete one). With `int8Codes`, also writes /layers/<name>/codes as int8 beside
/// the packed codes. Throws std::runtime_error naming the file for I/O and HDF5 failures.
void saveModel(const TernaryModel& model, const std::string& path, bool int8Codes = false);

/// Reads a model file. Throws std::runtime_error "TernaryModel::load(): '<path>' ..." for a
/// missing, truncated or corrupt file, a checkpoint given instead ("is a tern checkpoint, not a
/// model file"), missing or wrongly shaped contents ("not a valid model file: ..."), packed and
/// int8 codes that differ, or a graph that does not fit together.
TernaryModel loadModel(const std::string& path);

}  // namespace tern::deploy
