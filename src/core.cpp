// Core types, argument checks, parameter sets and in-memory state.
#include "tern/core/error.hpp"
#include "tern/core/parameter.hpp"
#include "tern/core/state.hpp"

#include "tern/core/format.hpp"
#include "tern/core/parallel.hpp"

#include <algorithm>
#include <charconv>
#include <iomanip>
#include <sstream>
#include <cmath>
#include <vector>
#include <stdexcept>

namespace tern {

std::string joined(const std::vector<std::string>& items, const std::string& separator) {
    std::string s;
    for (size_t i = 0; i < items.size(); ++i) {
        if (i) s += separator;
        s += items[i];
    }
    return s;
}

std::string formatDuration(double s) {
    if (!std::isfinite(s) || s < 0) return "?";
    const long t = std::lround(s);
    std::ostringstream o;
    if (t >= 3600) o << t / 3600 << "h" << std::setw(2) << std::setfill('0') << (t % 3600) / 60 << "m";
    else o << t / 60 << "m" << std::setw(2) << std::setfill('0') << t % 60 << "s";
    return o.str();
}

namespace {

template <class T>
std::string shortest(T x) {
    if (std::isnan(x)) return "nan";  // to_chars would print "-nan" for a negative NaN
    char buf[64];                      // the longest double is 24 characters
    const auto [end, ec] = std::to_chars(buf, buf + sizeof buf, x);
    if (ec != std::errc()) throw std::logic_error("formatShortest(): std::to_chars failed");
    return std::string(buf, end);
}

}  // namespace

std::string formatShortest(double x) { return shortest(x); }

std::string formatShortest(float x) { return shortest(x); }

namespace {
template <typename T>
std::optional<T> parseWhole(std::string_view t) {
    T v{};
    const auto [end, ec] = std::from_chars(t.data(), t.data() + t.size(), v);
    if (t.empty() || ec != std::errc() || end != t.data() + t.size()) return std::nullopt;
    return v;
}
}  // namespace

std::optional<double> parseWholeNumber(std::string_view text) { return parseWhole<double>(text); }

std::optional<long long> parseWholeInteger(std::string_view text) { return parseWhole<long long>(text); }

Granularity parseGranularity(const std::string& name) {
    if (name == "tensor" || name == "layer") return Granularity::PerTensor;
    if (name == "filter" || name == "channel") return Granularity::PerFilter;
    throw std::invalid_argument("parseGranularity(): unknown granularity '" + name +
                                "'; known: tensor, filter");
}

std::string granularityName(Granularity g) {
    return g == Granularity::PerTensor ? "tensor" : "filter";
}

Index Shape::size() const {
    Index n = 1;
    for (Index d : dims) n *= d;
    return n;
}

Index Shape::filters() const { return dims.empty() ? 1 : dims.front(); }

std::string Shape::str() const {
    std::string s = "[";
    for (size_t i = 0; i < dims.size(); ++i) s += (i ? ", " : "") + std::to_string(dims[i]);
    return s + "]";
}

void fail(const std::string& where, const std::string& what) {
    throw std::invalid_argument(where + ": " + what);
}

void requirePositive(double value, const char* where, const char* field) {
    if (!(value > 0) || !std::isfinite(value))
        fail(where, TERN_MSG(field << " must be > 0 (got " << value << ")"));
}

void requireNonNegative(double value, const char* where, const char* field) {
    if (!(value >= 0) || !std::isfinite(value))
        fail(where, TERN_MSG(field << " must be >= 0 (got " << value << ")"));
}

void requireInRange(double value, double lo, double hi, const char* where, const char* field) {
    if (!(value >= lo && value <= hi))
        fail(where, TERN_MSG(field << " must be in [" << lo << ", " << hi << "] (got " << value
                                   << ")"));
}

void requireSameSize(Index a, Index b, const char* where, const char* aName, const char* bName) {
    if (a != b)
        fail(where, TERN_MSG(aName << " has " << a << " elements, " << bName << " has " << b));
}

void requireFinite(CVecRef v, const char* where, const char* name) {
    // Fast path, one vectorised pass in parallel chunks: x * 0 is 0 for a finite x and NaN for
    // an infinite or NaN one. Only a failure scans for the index to report.
    const double probe = parallelSum(v.size(), [&](Index b, Index len) {
        return static_cast<double>((v.segment(b, len).array() * Scalar(0)).sum());
    });
    if (probe == 0) return;
    for (Index i = 0; i < v.size(); ++i)
        if (!std::isfinite(v[i]))
            fail(where, TERN_MSG(name << " has a non-finite entry at index " << i << " (" << v[i]
                                      << ")"));
}

// ---------------------------------------------------------------- ParameterSet

ParameterBlock& ParameterSet::add(std::string name, Shape shape, bool constrained, bool decay) {
    if (has(name)) fail("ParameterSet::add()", "duplicate block name '" + name + "'");
    ParameterBlock& b = blocks_.emplace_back();
    b.name = std::move(name);
    b.shape = std::move(shape);
    b.value = Vector::Zero(b.shape.size());
    b.grad = Vector::Zero(b.shape.size());
    b.constrained = constrained;
    b.decay = decay;
    return b;
}

bool ParameterSet::has(const std::string& name) const {
    for (const auto& b : blocks_)
        if (b.name == name) return true;
    return false;
}

const ParameterBlock& ParameterSet::at(const std::string& name) const {
    for (const auto& b : blocks_)
        if (b.name == name) return b;
    std::string known;
    for (const auto& b : blocks_) known += (known.empty() ? "" : ", ") + b.name;
    throw std::out_of_range("ParameterSet::at(): no block '" + name + "'; known: " + known);
}

ParameterBlock& ParameterSet::at(const std::string& name) {
    return const_cast<ParameterBlock&>(static_cast<const ParameterSet*>(this)->at(name));
}

std::vector<ParameterBlock*> ParameterSet::all() {
    std::vector<ParameterBlock*> out;
    for (auto& b : blocks_) out.push_back(&b);
    return out;
}

std::vector<const ParameterBlock*> ParameterSet::all() const {
    std::vector<const ParameterBlock*> out;
    for (const auto& b : blocks_) out.push_back(&b);
    return out;
}

std::vector<ParameterBlock*> ParameterSet::constrained() {
    std::vector<ParameterBlock*> out;
    for (auto& b : blocks_)
        if (b.constrained) out.push_back(&b);
    return out;
}

Index ParameterSet::numel() const {
    Index n = 0;
    for (const auto& b : blocks_) n += b.value.size();
    return n;
}

void ParameterSet::requireFinite(const std::string& where) const {
    for (const auto& b : blocks_)
        for (Index i = 0; i < b.value.size(); ++i)
            if (!std::isfinite(b.value[i]))
                throw std::runtime_error(TERN_MSG(where << ": parameter '" << b.name << "' holds "
                                                        << b.value[i] << " at index " << i
                                                        << " (a corrupt or diverged checkpoint)"));
}

// ---------------------------------------------------------------- MemoryState

void MemoryState::write(const std::string& key, CVecRef data, const Shape& shape) {
    requireSameSize(data.size(), shape.size(), "MemoryState::write()", "data", "shape");
    tensors_[key] = {Vector(data), shape};
}

void MemoryState::writeInts(const std::string& key, const std::vector<std::int64_t>& data) {
    ints_[key] = data;
}

void MemoryState::attr(const std::string& path, const std::string& name, double value) {
    attrs_[{path, name}] = value;
}
void MemoryState::attr(const std::string& path, const std::string& name, std::int64_t value) {
    attrs_[{path, name}] = value;
}
void MemoryState::attr(const std::string& path, const std::string& name,
                       const std::string& value) {
    attrs_[{path, name}] = value;
}

bool MemoryState::has(const std::string& key) const {
    return tensors_.count(key) || ints_.count(key);
}

Vector MemoryState::read(const std::string& key, const Shape& expected) const {
    auto it = tensors_.find(key);
    if (it == tensors_.end()) throw std::out_of_range("MemoryState::read(): no tensor '" + key + "'");
    if (it->second.second != expected)
        fail("MemoryState::read()", "tensor '" + key + "' has shape " + it->second.second.str() +
                                        ", expected " + expected.str());
    return it->second.first;
}

std::vector<std::int64_t> MemoryState::readInts(const std::string& key) const {
    auto it = ints_.find(key);
    if (it == ints_.end()) throw std::out_of_range("MemoryState::readInts(): no array '" + key + "'");
    return it->second;
}

bool MemoryState::hasAttr(const std::string& path, const std::string& name) const {
    return attrs_.count({path, name}) != 0;
}

const MemoryState::AttrValue& MemoryState::findAttr(const std::string& path,
                                                    const std::string& name) const {
    auto it = attrs_.find({path, name});
    if (it == attrs_.end())
        throw std::out_of_range("MemoryState: no attribute '" + name + "' on '" + path + "'");
    return it->second;
}

double MemoryState::attrDouble(const std::string& path, const std::string& name) const {
    const AttrValue& v = findAttr(path, name);
    if (auto* d = std::get_if<double>(&v)) return *d;
    if (auto* i = std::get_if<std::int64_t>(&v)) return static_cast<double>(*i);
    fail("MemoryState::attrDouble()", "attribute '" + name + "' on '" + path + "' is a string");
}

std::int64_t MemoryState::attrInt(const std::string& path, const std::string& name) const {
    const AttrValue& v = findAttr(path, name);
    if (auto* i = std::get_if<std::int64_t>(&v)) return *i;
    fail("MemoryState::attrInt()", "attribute '" + name + "' on '" + path + "' is not an integer");
}

std::string MemoryState::attrString(const std::string& path, const std::string& name) const {
    const AttrValue& v = findAttr(path, name);
    if (auto* s = std::get_if<std::string>(&v)) return *s;
    fail("MemoryState::attrString()", "attribute '" + name + "' on '" + path + "' is not a string");
}

}  // namespace tern

// ------------------------------------------------------------------ parallel chunks

namespace tern {

void parallelChunks(Index n, const std::function<void(Index, Index, Index)>& body) {
    const Index chunks = parallelChunkCount(n);
    if (chunks == 1) {
        body(0, n, 0);
        return;
    }
#pragma omp parallel for schedule(static)
    for (Index c = 0; c < chunks; ++c) {
        const Index begin = c * kParallelChunk;
        body(begin, std::min(kParallelChunk, n - begin), c);
    }
}

double parallelSum(Index n, const std::function<double(Index, Index)>& part) {
    const Index chunks = parallelChunkCount(n);
    if (chunks <= 1) return chunks == 1 ? part(0, n) : 0.0;
    std::vector<double> partial(static_cast<size_t>(chunks));
    parallelChunks(n, [&](Index b, Index len, Index c) { partial[size_t(c)] = part(b, len); });
    double s = 0;
    for (double p : partial) s += p;  // chunk order: the same for any thread count
    return s;
}

}  // namespace tern
