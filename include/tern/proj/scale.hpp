#pragma once
/// \file Whether a scaled level set keeps its scale free or fixes it to 1.
namespace tern::proj {

/// How the scale `a` of a scaled level set a*L is chosen.
///
///   Free: a >= 0 is optimised jointly with the code (the usual BWN/TWN/ADMM choice).
///   One:  a = 1, so the set is L itself (the handout's multiplication-free ablation);
///         spec option ",scale=one".
enum class ScaleMode { Free, One };

}  // namespace tern::proj
