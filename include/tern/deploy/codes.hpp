#pragma once
/// \file Ternary codes of a trained block: the ternary check (a block holds at most two nonzero
/// levels per group) and the 2-bit packing of the model file (docs/export.md).
#include "tern/core/parameter.hpp"

#include <cstdint>
#include <vector>

namespace tern::deploy {

/// A block's values as codes in {-1, 0, +1} with one pair of levels per group:
/// value = groupScale[g] * (code > 0 ? 1 : code < 0 ? -negRatio[g] : 0).
struct TernaryCodes {
    Index groups = 1;                ///< 1 (one pair of levels for the tensor) or filters
    std::vector<std::int8_t> codes;  ///< one per value, in the block's order
    /// Per group: a_g, the level code +1 stands for (1 for an all-zero group). Sign-symmetric
    /// {-a, 0, +a} and one-sided sets give a = max |value|; TTQ's independent Wp, Wn give
    /// a = Wp (which may even be negative).
    Vector groupScale;
    /// groupScale before rounding to float: BN folding multiplies by it in double precision.
    std::vector<double> groupScaleExact;
    /// Per group: r_g, the magnitude of the level of code -1 relative to a_g (1 for
    /// sign-symmetric sets; TTQ's Wn/Wp otherwise; < 0 if both levels share a sign).
    Vector negRatio;
};

/// The ternary check and encoding of `block` (dim 0 = filters): one pair of levels for the
/// whole tensor if it has one, else one per filter. Every value must be 0 or within
/// `tolerance * max|level|` of a level. Throws std::runtime_error "block '<name>' is not
/// ternary: filter <g> holds <v> besides the levels <lo>, 0, <hi> (value <i>)" otherwise
/// (also for a non-finite value).
TernaryCodes encodeTernary(const ParameterBlock& block, double tolerance);

/// Packs codes in {-1, 0, +1} into 2 bits each, four per byte, first code in the low bits:
/// byte j holds codes 4j..4j+3, code 4j+k in bits 2k..2k+1; 0 -> 0b00, +1 -> 0b01,
/// -1 -> 0b10 (0b11 is invalid). The last byte is zero-padded. Throws std::invalid_argument
/// for a code outside {-1, 0, 1}.
std::vector<std::uint8_t> packCodes(const std::vector<std::int8_t>& codes);
/// Inverse of packCodes for `count` codes. Throws std::invalid_argument if `packed` has the
/// wrong length or holds 0b11.
std::vector<std::int8_t> unpackCodes(const std::vector<std::uint8_t>& packed, Index count);

}  // namespace tern::deploy
