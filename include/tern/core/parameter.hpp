#pragma once
/// \file Named parameter blocks: how an Objective exposes its coordinates to an Optimizer.
#include "tern/core/types.hpp"

#include <deque>
#include <string>
#include <vector>

namespace tern {

/// One tensor of an objective, plain row-major, dim 0 = output filter.
struct ParameterBlock {
    std::string name;          ///< "conv2.weights"; also its HDF5 path component
    Shape shape;               ///< logical shape (OIHW, OI, C, ...)
    Vector value;              ///< the point the Objective is evaluated at
    Vector grad;               ///< d loss / d value, written by the Objective
    bool constrained = false;  ///< the optimizer's projection/quantizer applies to it
    bool decay = true;         ///< weight decay applies to it (off for BN gamma/beta, biases)
};

/// Owns blocks; block addresses (and their buffers) stay valid while the set lives.
class ParameterSet {
public:
    /// Adds a zero-initialised block. Throws std::invalid_argument on a duplicate name.
    ParameterBlock& add(std::string name, Shape shape, bool constrained, bool decay = true);
    /// Throws std::out_of_range naming the block and the known names.
    ParameterBlock& at(const std::string& name);
    const ParameterBlock& at(const std::string& name) const;
    bool has(const std::string& name) const;
    std::vector<ParameterBlock*> all();
    std::vector<const ParameterBlock*> all() const;
    std::vector<ParameterBlock*> constrained();
    Index size() const { return static_cast<Index>(blocks_.size()); }
    /// Total scalar count over all blocks.
    Index numel() const;
    /// Throws std::runtime_error "<where>: parameter '<name>' holds <v> at index <i> (a corrupt
    /// or diverged checkpoint)" for the first non-finite value (checkpoints loaded by tern-train
    /// --resume/--init and by export are checked with it).
    void requireFinite(const std::string& where) const;

private:
    std::deque<ParameterBlock> blocks_;  // deque: stable addresses on push_back
};

}  // namespace tern
