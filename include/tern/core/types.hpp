#pragma once
/// \file Core scalar, vector and shape types shared by every part of tern.
#include <Eigen/Core>

#include <cstdint>
#include <string>
#include <vector>

namespace tern {

/// tern computes in f32 end to end (oneDNN f32).
using Scalar = float;
using Index = Eigen::Index;
using Vector = Eigen::Matrix<Scalar, Eigen::Dynamic, 1>;
/// In-out vector argument; accepts `.segment()` slices without copies.
using VecRef = Eigen::Ref<Vector>;
/// Read-only vector argument.
using CVecRef = const Eigen::Ref<const Vector>&;

/// How a scale is shared: one per tensor, or one per output filter (slice along dim 0).
enum class Granularity { PerTensor, PerFilter };

/// "tensor" / "filter" <-> Granularity. Throws std::invalid_argument on an unknown name.
Granularity parseGranularity(const std::string& name);
std::string granularityName(Granularity g);

/// Dense tensor shape, row-major, dim 0 = output filter (OIHW / OI / C).
struct Shape {
    std::vector<Index> dims;

    Shape() = default;
    Shape(std::initializer_list<Index> d) : dims(d) {}
    explicit Shape(std::vector<Index> d) : dims(std::move(d)) {}

    /// Number of elements (1 for a rank-0 shape).
    Index size() const;
    /// Size of dim 0 (1 for rank 0).
    Index filters() const;
    /// Number of groups for a granularity: 1 (tensor) or filters() (filter).
    Index groups(Granularity g) const { return g == Granularity::PerTensor ? 1 : filters(); }
    /// "[32, 1, 5, 5]".
    std::string str() const;
    bool operator==(const Shape& o) const { return dims == o.dims; }
    bool operator!=(const Shape& o) const { return dims != o.dims; }
};

}  // namespace tern
