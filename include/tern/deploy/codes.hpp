#pragma once
/// \file Codes of a trained block: the ternary check (a block holds at most two nonzero levels
/// per group) and the 2-bit packing of the model file; the power-of-two check (every nonzero
/// value is a group scale times +-2^e) and its sign + exponent codes (docs/export.md).
#include "tern/core/parameter.hpp"
#include "tern/deploy/layer.hpp"

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

/// A block's values as signed powers of two with one scale per group:
/// value = groupScale[g] * sign(code) * 2^(exponentMin + |code| - 1), code 0 = 0.
struct PowerOfTwoCodes {
    Index groups = 1;                ///< 1 (one scale for the tensor) or filters
    /// One per value, in the block's order: 0 for a zero, else +-(e - exponentMin + 1), where
    /// e is the value's exponent relative to its group's scale.
    std::vector<std::int8_t> codes;
    /// Per group: a_g. 1 when every nonzero value of the group is itself +-2^e (GTC, pow2 with
    /// scale one), else the group's smallest nonzero magnitude (a free scale times 2^0 or more);
    /// both are values the block holds (or 1), so a_g * 2^e reproduces every value exactly.
    Vector groupScale;
    int exponentMin = 0;  ///< m: the smallest e over the nonzero values (0 if there is none)
    int exponentMax = 0;  ///< M: the largest e over the nonzero values (0 if there is none)
    int bits = 2;         ///< the packed width of one code: powerOfTwoCodeBits(m, M)
};

/// The most exponents a power-of-two layer may use: |code| <= 127 (an int8, 8 bits packed).
inline constexpr int kMaxPowerOfTwoExponents = 127;

/// The power-of-two check and encoding of `block` (dim 0 = filters): one scale a_g for the
/// whole tensor if every nonzero value is a_g * (+-2^e) for it, else one per filter (a_g as in
/// PowerOfTwoCodes). "Is a power of two" allows `tolerance` relative error, as the ternary
/// check does; values of tern's power-of-two sets are exact. Throws std::runtime_error "block
/// '<name>' is not power-of-two: filter <g> holds <v> (value <i>), which is not <a_g> times a
/// power of two" (also for a non-finite value), or "... uses the exponents <m>..<M>: <R>
/// of them, more than the 127 an 8-bit code holds".
PowerOfTwoCodes encodePowerOfTwo(const ParameterBlock& block, double tolerance);

/// The packed width of a power-of-two code: a sign bit and the exponent index |code| in
/// 0..R (0 = zero), R = M - m + 1 exponents, so 1 + ceil(log2(R + 1)) bits. That is GTC's
/// gtcBits(m, M) = 1 + ceil(log2 R) when R is not a power of two, one more when it is (the
/// code for zero needs the room). Throws std::invalid_argument unless
/// 1 <= R <= kMaxPowerOfTwoExponents.
int powerOfTwoCodeBits(int exponentMin, int exponentMax);
/// GTC's bits of a layer, 1 + ceil(log2(M - m + 1)) (a sign bit and the exponents, no code for
/// zero; proj::GtcBits). Throws std::invalid_argument if M < m.
int gtcBits(int exponentMin, int exponentMax);

/// Packs power-of-two codes at `bits` (2..8) bits each into one little-endian bit stream:
/// code i fills stream bits [i*bits, (i+1)*bits), stream bit k is bit k % 8 of byte k / 8;
/// within a code the low bits - 1 bits hold |code| and the top bit the sign (1 = negative).
/// The last byte is zero-padded. Throws std::invalid_argument for a |code| that does not fit.
std::vector<std::uint8_t> packPowerOfTwoCodes(const std::vector<std::int8_t>& codes, int bits);
/// Inverse of packPowerOfTwoCodes for `count` codes. Throws std::invalid_argument if `packed`
/// has the wrong length, or holds a negative zero (sign bit with |code| 0) or a |code| above
/// `maxMagnitude` (R, the layer's exponent count).
std::vector<std::int8_t> unpackPowerOfTwoCodes(const std::vector<std::uint8_t>& packed,
                                               Index count, int bits, int maxMagnitude);

/// A constrained block as the model file stores it: ternary codes if the block passes the
/// ternary check (at most two nonzero levels per group, as before), else power-of-two codes.
struct QuantizedCodes {
    WeightCoding coding = WeightCoding::Ternary;  ///< Ternary or PowerOfTwo
    TernaryCodes ternary;                         ///< coding == Ternary
    PowerOfTwoCodes powerOfTwo;                   ///< coding == PowerOfTwo
};

/// encodeTernary(), or encodePowerOfTwo() for a block that is not ternary. Throws
/// std::runtime_error "block '<name>' is not ternary: <why> and not power-of-two: <why>" if
/// it is neither (the first failing filter and value of each check).
QuantizedCodes encodeQuantized(const ParameterBlock& block, double tolerance);

}  // namespace tern::deploy
