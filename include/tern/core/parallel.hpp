#pragma once
/// \file Deterministic chunked loops over large vectors: the range [0, n) is cut into fixed
/// chunks of kParallelChunk entries (independent of the thread count), the chunks run on the
/// OpenMP threads, and per-chunk partial results are combined in chunk order. Results are
/// therefore the same for any thread count. Ranges of one chunk run inline.
#include "tern/core/types.hpp"

#include <functional>

namespace tern {

/// Entries per chunk.
inline constexpr Index kParallelChunk = Index{1} << 15;

/// Number of chunks of [0, n).
inline Index parallelChunkCount(Index n) { return n <= 0 ? 0 : (n + kParallelChunk - 1) / kParallelChunk; }

/// Calls body(begin, length, chunkIndex) for every chunk of [0, n), in parallel.
void parallelChunks(Index n, const std::function<void(Index, Index, Index)>& body);

/// Sum over chunks of part(begin, length), added in chunk order.
double parallelSum(Index n, const std::function<double(Index, Index)>& part);

}  // namespace tern
