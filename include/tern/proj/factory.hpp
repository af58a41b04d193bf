#pragma once
/// \file makeProjection() / projectionNames() (declared in projection.hpp) and every concrete set.
///
/// Spec grammar: "<name>[,<key>=<value>]...". Names and keys:
///
///   box            lo, hi (default -1, 1)
///   binary         -
///   binary:scaled  scale=free|one
///   ternary        -
///   ternary:twn    ratio (0.7), scale
///   ternary:exact  scale
///   ternary:topk   k | fraction (one required), scale
///   pow2           bits (3), rounds (20), solver=alternate|exact, scale
#include "tern/proj/binary.hpp"
#include "tern/proj/box.hpp"
#include "tern/proj/power_of_two.hpp"
#include "tern/proj/projection.hpp"
#include "tern/proj/sparse_ternary.hpp"
#include "tern/proj/ternary.hpp"
