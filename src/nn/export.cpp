// Deployment: BN folding into ternary codes + per-channel scale/shift, the "tern-model" HDF5
// file, and a oneDNN inference path over it (docs/export.md, docs/algorithms.md section 9).
#include "tern/nn/export.hpp"

#include "tern/core/error.hpp"
#include "tern/io/checkpoint.hpp"
#include "tern/nn/layers.hpp"
#include "tern/nn/loss.hpp"
#include "tern/nn/models.hpp"

#include <H5Cpp.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <deque>
#include <filesystem>
#include <iomanip>
#include <sstream>
#include <unordered_map>

namespace tern::nn {

namespace fs = std::filesystem;
using dnnl::memory;
using dt = memory::data_type;
using tag = memory::format_tag;

// ------------------------------------------------------------------------------- helpers

std::string kindName(DeployedKind k) {
    switch (k) {
    case DeployedKind::Conv: return "conv";
    case DeployedKind::Fc: return "fc";
    case DeployedKind::Relu: return "relu";
    case DeployedKind::Pool: return "pool";
    }
    return "?";
}

namespace {

DeployedKind parseKind(const std::string& s, const std::string& where) {
    if (s == "conv") return DeployedKind::Conv;
    if (s == "fc") return DeployedKind::Fc;
    if (s == "relu") return DeployedKind::Relu;
    if (s == "pool") return DeployedKind::Pool;
    throw std::runtime_error(where + ": unknown layer type '" + s + "'; known: conv, fc, relu, pool");
}

bool weighted(const DeployedLayer& l) {
    return l.kind == DeployedKind::Conv || l.kind == DeployedKind::Fc;
}

bool hasScale(const DeployedLayer& l) { return (l.scale.array() != 1.0f).any(); }

std::string dimsStr(const std::vector<Index>& d) {
    std::ostringstream s;
    for (size_t i = 0; i < d.size(); ++i) s << (i ? "x" : "") << d[i];
    return s.str();
}

/// Dims of one image ({C, H, W} or {F}) after layer `l`; throws naming the layer if they do
/// not fit.
std::vector<Index> outDims(const DeployedLayer& l, const std::vector<Index>& in,
                           const std::string& where) {
    auto bad = [&](const std::string& what) {
        throw std::runtime_error(where + ": layer '" + l.name + "' (" + kindName(l.kind) +
                                 ") " + what + ", input " + dimsStr(in));
    };
    Index features = 1;
    for (Index d : in) features *= d;
    switch (l.kind) {
    case DeployedKind::Conv: {
        if (in.size() != 3 || in[0] != l.in) bad(TERN_MSG("expects " << l.in << " channels"));
        const Index h = (in[1] + 2 * l.padding - l.kernel) / l.stride + 1;
        const Index w = (in[2] + 2 * l.padding - l.kernel) / l.stride + 1;
        if (h < 1 || w < 1) bad("has no output");
        return {l.out, h, w};
    }
    case DeployedKind::Fc:
        if (features != l.in) bad(TERN_MSG("expects " << l.in << " input features"));
        return {l.out};
    case DeployedKind::Pool: {
        if (in.size() != 3 || in[1] < l.kernel || in[2] < l.kernel) bad("input too small");
        return {in[0], (in[1] - l.kernel) / l.stride + 1, (in[2] - l.kernel) / l.stride + 1};
    }
    case DeployedKind::Relu: return in;
    }
    return in;
}

/// The levels of one group: at most two distinct nonzero values, hi >= lo (within tol).
struct Levels {
    double hi = 0, lo = 0;  ///< largest and smallest nonzero value (0 if none)
    bool any = false, ok = true;
    Index badIndex = -1;
};

Levels levelsOf(const float* v, Index n, double tol) {
    Levels L;
    for (Index i = 0; i < n; ++i) {
        if (!std::isfinite(v[i])) {
            L.ok = false;
            L.badIndex = i;
            return L;
        }
        if (v[i] == 0) continue;
        L.hi = L.any ? std::max(L.hi, double(v[i])) : double(v[i]);
        L.lo = L.any ? std::min(L.lo, double(v[i])) : double(v[i]);
        L.any = true;
    }
    const double m = std::max(std::abs(L.hi), std::abs(L.lo));
    for (Index i = 0; i < n && L.ok; ++i) {
        const double x = v[i];
        if (x != 0 && std::abs(x - L.hi) > tol * m && std::abs(x - L.lo) > tol * m) {
            L.ok = false;
            L.badIndex = i;
        }
    }
    return L;
}

/// The representation of a group's levels: code +1 stands for a, code -1 for -r*a.
/// Sign-symmetric {-a, 0, +a} (and one-sided sets) give r = 1; an all-zero group a = r = 1.
/// TTQ's independent Wp, Wn give r = Wn/Wp; its Wp may even change sign in training, so the two
/// levels can share a sign (then r < 0).
struct GroupCode {
    double a = 1, r = 1;
    bool twoLevels = false;  // codes: +1 for hi, -1 for lo (else the sign)
};

GroupCode groupCode(const Levels& L, double tol) {
    GroupCode g;
    if (!L.any) return g;
    const double m = std::max(std::abs(L.hi), std::abs(L.lo));
    if (std::abs(L.hi - L.lo) <= tol * m) {  // one nonzero level
        g.a = std::abs(L.hi);
        return g;
    }
    if (L.hi > 0 && L.lo < 0 && std::abs(L.hi + L.lo) <= tol * m) {  // {-a, 0, +a}
        g.a = m;
        return g;
    }
    g.twoLevels = true;
    g.a = L.hi;
    g.r = -L.lo / L.hi;
    return g;
}

std::int8_t codeOf(float v, const Levels& L, const GroupCode& g) {
    if (v == 0) return 0;
    if (!g.twoLevels) return static_cast<std::int8_t>(v > 0 ? 1 : -1);
    return static_cast<std::int8_t>(std::abs(v - L.hi) <= std::abs(v - L.lo) ? 1 : -1);
}

/// Folds the block `w` (and an optional bias and BN) into a DeployedLayer.
void foldWeights(DeployedLayer& d, const ParameterBlock& w, const ParameterBlock* bias,
                 const BatchNorm* bn, double tol) {
    const Index out = d.out;
    const Index per = w.value.size() / out;
    d.weightShape = w.shape;
    d.sourceBlock = w.name;
    d.ternary = w.constrained;
    std::vector<double> a(static_cast<size_t>(out), 1.0);
    if (d.ternary) {
        // One pair of levels for the whole tensor if it has one, else one per filter.
        const Levels whole = levelsOf(w.value.data(), w.value.size(), tol);
        d.groups = whole.ok ? 1 : out;
        const Index gsize = w.value.size() / d.groups;
        d.groupScale.resize(d.groups);
        d.negRatio.resize(d.groups);
        d.codes.resize(static_cast<size_t>(w.value.size()));
        for (Index g = 0; g < d.groups; ++g) {
            const float* v = w.value.data() + g * gsize;
            const Levels L = d.groups == 1 ? whole : levelsOf(v, gsize, tol);
            if (!L.ok) {
                const Index i = g * gsize + L.badIndex;
                throw std::runtime_error(TERN_MSG(
                    "block '" << w.name << "' is not ternary: filter " << g << " holds "
                              << std::setprecision(9) << w.value[i] << " besides the levels "
                              << L.lo << ", 0, " << L.hi << " (value " << i << ")"));
            }
            const GroupCode gc = groupCode(L, tol);
            d.groupScale[g] = static_cast<Scalar>(gc.a);
            d.negRatio[g] = static_cast<Scalar>(gc.r);
            for (Index i = 0; i < gsize; ++i) d.codes[g * gsize + i] = codeOf(v[i], L, gc);
            for (Index c = g * gsize / per; c < (g + 1) * gsize / per; ++c) a[c] = gc.a;
        }
    } else {
        d.weights = w.value;
    }
    // BN folding (algorithms.md section 9):
    //   s_c = gamma_c * a_c / sqrt(v_c + eps),  b_c = beta_c + gamma_c * (bias_c - m_c) / sqrt(v_c + eps)
    d.scale.resize(out);
    d.bias.resize(out);
    d.foldedBatchNorm = bn != nullptr;
    for (Index c = 0; c < out; ++c) {
        const double b0 = bias ? double(bias->value[c]) : 0.0;
        if (bn) {
            const double k = double(bn->gamma()->value[c]) /
                             std::sqrt(double(bn->runningVar()[c]) + double(bn->epsilon()));
            d.scale[c] = static_cast<Scalar>(k * a[c]);
            d.bias[c] = static_cast<Scalar>(double(bn->beta()->value[c]) +
                                            k * (b0 - double(bn->runningMean()[c])));
        } else {
            d.scale[c] = static_cast<Scalar>(a[c]);
            d.bias[c] = static_cast<Scalar>(b0);
        }
    }
    d.multiplicationFree = d.ternary && (d.negRatio.array() == 1.0f).all() && !hasScale(d);
}

void quietHdf5() { H5::Exception::dontPrint(); }

std::string h5detail(const H5::Exception& e) { return e.getDetailMsg(); }

void fsyncPath(const std::string& path, bool directory) {
    const int fd = ::open(path.c_str(), directory ? O_RDONLY | O_DIRECTORY : O_RDONLY);
    if (fd < 0) throw std::runtime_error("cannot open '" + path + "' to fsync it");
    const int rc = ::fsync(fd);
    ::close(fd);
    if (rc != 0) throw std::runtime_error("cannot fsync '" + path + "'");
}

/// Writes an 8-bit integer dataset (uint8 or int8) with the given dims.
template <typename T>
void writeBytes(H5::H5File& f, const std::string& key, const std::vector<T>& data,
                const std::vector<Index>& dims) {
    std::vector<hsize_t> hd(dims.begin(), dims.end());
    H5::DataSpace space(static_cast<int>(hd.size()), hd.data());
    const H5::PredType& file = std::is_signed_v<T> ? H5::PredType::STD_I8LE : H5::PredType::STD_U8LE;
    const H5::PredType& mem = std::is_signed_v<T> ? H5::PredType::NATIVE_INT8 : H5::PredType::NATIVE_UINT8;
    H5::DataSet ds = f.createDataSet(key, file, space);
    if (!data.empty()) ds.write(data.data(), mem);
}

/// Reads an 8-bit integer dataset, checking its type and element count.
template <typename T>
std::vector<T> readBytes(H5::H5File& f, const std::string& key, Index count,
                         const std::string& where) {
    const H5::DataSet ds = f.openDataSet(key);
    const H5::DataType type = ds.getDataType();
    if (type.getClass() != H5T_INTEGER || type.getSize() != 1)
        throw std::runtime_error(where + ": '" + key + "' is not an 8-bit integer dataset");
    const hssize_t n = ds.getSpace().getSelectNpoints();
    if (n != count)
        throw std::runtime_error(where + TERN_MSG(": '" << key << "' has " << n
                                                        << " elements, expected " << count));
    std::vector<T> out(static_cast<size_t>(count));
    if (count > 0)
        ds.read(out.data(), std::is_signed_v<T> ? H5::PredType::NATIVE_INT8
                                                : H5::PredType::NATIVE_UINT8);
    return out;
}

/// Default image size of a dataset when the data cannot be read.
std::vector<Index> standardInput(const std::string& dataset) {
    if (dataset == "cifar10") return {3, 32, 32};
    return {1, 28, 28};
}

bool parseBool(const std::string& v, const std::string& key, const std::string& where) {
    if (v == "true" || v == "1") return true;
    if (v == "false" || v == "0") return false;
    throw std::runtime_error(where + ": config '" + key + "' is '" + v + "', expected true/false");
}

const std::vector<std::string> kInfoKeys{"model", "dataset", "train-limit", "width", "bn",
                                         "method", "alpha", "projection", "granularity",
                                         "quantize-first", "quantize-last", "epochs", "seed"};

}  // namespace

// ------------------------------------------------------------------------ packing

std::vector<std::uint8_t> packCodes(const std::vector<std::int8_t>& codes) {
    std::vector<std::uint8_t> out((codes.size() + 3) / 4, 0);
    for (size_t i = 0; i < codes.size(); ++i) {
        const std::int8_t c = codes[i];
        if (c < -1 || c > 1)
            fail("packCodes()", TERN_MSG("code " << i << " is " << int(c) << ", expected -1, 0 or 1"));
        const std::uint8_t bits = c == 0 ? 0u : (c > 0 ? 1u : 2u);
        out[i / 4] = static_cast<std::uint8_t>(out[i / 4] | (bits << (2 * (i % 4))));
    }
    return out;
}

std::vector<std::int8_t> unpackCodes(const std::vector<std::uint8_t>& packed, Index count) {
    if (count < 0 || static_cast<Index>(packed.size()) != (count + 3) / 4)
        fail("unpackCodes()", TERN_MSG(packed.size() << " bytes cannot hold " << count
                                                     << " codes (expected " << (count + 3) / 4
                                                     << ")"));
    std::vector<std::int8_t> out(static_cast<size_t>(count));
    for (Index i = 0; i < count; ++i) {
        const unsigned bits = (packed[i / 4] >> (2 * (i % 4))) & 3u;
        if (bits == 3u) fail("unpackCodes()", TERN_MSG("code " << i << " has the invalid bits 0b11"));
        out[i] = bits == 0 ? 0 : (bits == 1 ? 1 : -1);
    }
    return out;
}

// ------------------------------------------------------------------ DeployedLayer

Index DeployedLayer::nonzeros() const {
    if (ternary) return std::count_if(codes.begin(), codes.end(), [](std::int8_t c) { return c != 0; });
    return (weights.array() != 0.0f).count();
}

Vector DeployedLayer::effectiveWeights() const {
    if (!ternary) return weights;
    Vector w(static_cast<Index>(codes.size()));
    const Index per = groups > 0 ? w.size() / groups : w.size();
    for (Index i = 0; i < w.size(); ++i) {
        const std::int8_t c = codes[i];
        w[i] = c > 0 ? 1.0f : (c < 0 ? -negRatio[i / per] : 0.0f);
    }
    return w;
}

// --------------------------------------------------------------------- inference engine

/// oneDNN primitives for one batch size: conv / inner product with the per-channel scale and
/// shift as binary post-ops (or a plain bias when every s_c is 1) and ReLU as an eltwise
/// post-op; max pooling; reorders only where formats differ.
struct TernaryModel::Engine {
    Context ctx;
    Index batch = -1;
    std::vector<float> input;
    memory inputMem;
    struct Step {
        dnnl::primitive prim;
        std::unordered_map<int, memory> args;
    };
    std::vector<Step> steps;
    std::deque<Vector> buffers;  // user weights / scales / biases the memories point into
    memory out;                  // plain {N, classes}

    void build(const TernaryModel& m, Index n) {
        namespace d = dnnl;
        steps.clear();
        buffers.clear();
        batch = n;
        auto& eng = ctx.engine;
        const auto& in = m.input_;
        input.assign(static_cast<size_t>(n * in[0] * in[1] * in[2]), 0.0f);
        memory::desc curMd({n, in[0], in[1], in[2]}, dt::f32, tag::nchw);
        inputMem = memory(curMd, eng, input.data());
        memory cur = inputMem;
        auto any = [](const memory::dims& dd) { return memory::desc(dd, dt::f32, tag::any); };
        auto wrap = [&](const Vector& v, const memory::desc& md) {
            buffers.push_back(v);
            return memory(md, eng, buffers.back().data());
        };
        auto toFormat = [&](const memory::desc& want) {
            if (cur.get_desc() == want) return;
            memory next(want, eng);
            steps.push_back({d::reorder(cur, next), {{DNNL_ARG_FROM, cur}, {DNNL_ARG_TO, next}}});
            cur = next;
        };
        const auto& L = m.layers_;
        for (size_t i = 0; i < L.size(); ++i) {
            const DeployedLayer& l = L[i];
            const memory::dims srcDims = cur.get_desc().dims();
            try {
                if (l.kind == DeployedKind::Pool) {
                    const memory::dims dstDims{srcDims[0], srcDims[1],
                                               (srcDims[2] - l.kernel) / l.stride + 1,
                                               (srcDims[3] - l.kernel) / l.stride + 1};
                    d::pooling_forward::desc fd(d::prop_kind::forward_inference,
                                                d::algorithm::pooling_max, cur.get_desc(),
                                                any(dstDims), {l.stride, l.stride},
                                                {l.kernel, l.kernel}, {0, 0}, {0, 0});
                    d::pooling_forward::primitive_desc pd(fd, eng);
                    memory dst(pd.dst_desc(), eng);
                    steps.push_back({d::pooling_forward(pd), {{DNNL_ARG_SRC, cur}, {DNNL_ARG_DST, dst}}});
                    cur = dst;
                    continue;
                }
                if (l.kind == DeployedKind::Relu) {
                    d::eltwise_forward::desc fd(d::prop_kind::forward_inference,
                                                d::algorithm::eltwise_relu, cur.get_desc(), 0.0f);
                    d::eltwise_forward::primitive_desc pd(fd, eng);
                    memory dst(pd.dst_desc(), eng);
                    steps.push_back({d::eltwise_forward(pd), {{DNNL_ARG_SRC, cur}, {DNNL_ARG_DST, dst}}});
                    cur = dst;
                    continue;
                }
                // Conv / Fc: y = s_c * (W * x) + b_c, then ReLU if the next layer is one.
                const bool conv = l.kind == DeployedKind::Conv;
                const bool relu = i + 1 < L.size() && L[i + 1].kind == DeployedKind::Relu;
                const bool scaled = hasScale(l);
                memory::dims wDims{l.out};
                if (conv) wDims = {l.out, l.in, l.kernel, l.kernel};
                else wDims.insert(wDims.end(), srcDims.begin() + 1, srcDims.end());
                const tag wTag = wDims.size() == 4 ? tag::oihw : tag::oi;
                const memory::dims dstDims =
                    conv ? memory::dims{n, l.out, (srcDims[2] + 2 * l.padding - l.kernel) / l.stride + 1,
                                        (srcDims[3] + 2 * l.padding - l.kernel) / l.stride + 1}
                         : memory::dims{n, l.out};
                const memory::desc bMd = scaled ? memory::desc() : memory::desc({l.out}, dt::f32, tag::a);
                const memory::dims cDims = conv ? memory::dims{1, l.out, 1, 1} : memory::dims{1, l.out};
                const memory::desc cMd(cDims, dt::f32, conv ? tag::abcd : tag::ab);
                d::post_ops po;
                if (scaled) {
                    po.append_binary(d::algorithm::binary_mul, cMd);
                    po.append_binary(d::algorithm::binary_add, cMd);
                }
                if (relu) po.append_eltwise(1.0f, d::algorithm::eltwise_relu, 0.0f, 0.0f);
                d::primitive_attr attr;
                attr.set_post_ops(po);
                memory::desc srcMd, wMd, dstMd;
                d::primitive prim;
                if (conv) {
                    d::convolution_forward::desc fd(
                        d::prop_kind::forward_inference, d::algorithm::convolution_direct,
                        any(srcDims), any(wDims), bMd, any(dstDims), {l.stride, l.stride},
                        {l.padding, l.padding}, {l.padding, l.padding});
                    d::convolution_forward::primitive_desc pd(fd, attr, eng);
                    srcMd = pd.src_desc();
                    wMd = pd.weights_desc();
                    dstMd = pd.dst_desc();
                    prim = d::convolution_forward(pd);
                } else {
                    d::inner_product_forward::desc fd(d::prop_kind::forward_inference,
                                                      any(srcDims), any(wDims), bMd, any(dstDims));
                    d::inner_product_forward::primitive_desc pd(fd, attr, eng);
                    srcMd = pd.src_desc();
                    wMd = pd.weights_desc();
                    dstMd = pd.dst_desc();
                    prim = d::inner_product_forward(pd);
                }
                toFormat(srcMd);
                // The weights are constant: reorder them once, here.
                memory userW = wrap(l.effectiveWeights(), memory::desc(wDims, dt::f32, wTag));
                memory w = userW;
                if (wMd != userW.get_desc()) {
                    w = memory(wMd, eng);
                    d::reorder(userW, w).execute(ctx.stream, userW, w);
                    ctx.stream.wait();
                }
                memory dst(dstMd, eng);
                std::unordered_map<int, memory> args{{DNNL_ARG_SRC, cur}, {DNNL_ARG_WEIGHTS, w},
                                                     {DNNL_ARG_DST, dst}};
                if (scaled) {
                    args[DNNL_ARG_ATTR_MULTIPLE_POST_OP(0) | DNNL_ARG_SRC_1] = wrap(l.scale, cMd);
                    args[DNNL_ARG_ATTR_MULTIPLE_POST_OP(1) | DNNL_ARG_SRC_1] = wrap(l.bias, cMd);
                } else {
                    args[DNNL_ARG_BIAS] = wrap(l.bias, bMd);
                }
                steps.push_back({prim, std::move(args)});
                cur = dst;
                if (relu) ++i;  // fused
            } catch (const dnnl::error& e) {
                throw std::runtime_error(TERN_MSG("TernaryModel: oneDNN failed on layer '"
                                                  << l.name << "' (" << kindName(l.kind)
                                                  << ", batch " << n << "): " << e.what()));
            }
        }
        const memory::desc outMd({n, m.classes_}, dt::f32, tag::nc);
        if (cur.get_desc().dims() != outMd.dims())
            throw std::runtime_error("TernaryModel: the last layer does not produce the logits");
        toFormat(outMd);
        out = cur;
    }

    const float* run(const TernaryModel& m, const float* images, Index n) {
        if (batch != n) build(m, n);
        std::copy(images, images + static_cast<Index>(input.size()), input.begin());
        for (auto& s : steps) s.prim.execute(ctx.stream, s.args);
        ctx.stream.wait();
        return static_cast<const float*>(out.get_data_handle());
    }
};

// ----------------------------------------------------------------------- TernaryModel

TernaryModel::TernaryModel() = default;
TernaryModel::~TernaryModel() = default;
TernaryModel::TernaryModel(TernaryModel&&) noexcept = default;
TernaryModel& TernaryModel::operator=(TernaryModel&&) noexcept = default;

std::string TernaryModel::infoValue(const std::string& key) const {
    for (const auto& [k, v] : info_)
        if (k == key) return v;
    return "";
}

bool TernaryModel::multiplicationFree() const {
    bool any = false;
    for (const auto& l : layers_) {
        if (!weighted(l) || !l.ternary) continue;
        if (!l.multiplicationFree) return false;
        any = true;
    }
    return any;
}

bool TernaryModel::fullyMultiplicationFree() const {
    bool any = false;
    for (const auto& l : layers_) {
        if (!weighted(l)) continue;
        if (!l.ternary || !l.multiplicationFree) return false;
        any = true;
    }
    return any;
}

void TernaryModel::check() const {
    const std::string where = "TernaryModel";
    if (input_.size() != 3 || input_[0] < 1 || input_[1] < 1 || input_[2] < 1)
        throw std::runtime_error(where + ": input must be C, H, W > 0 (got " + dimsStr(input_) + ")");
    if (classes_ < 1) throw std::runtime_error(where + TERN_MSG(": classes is " << classes_));
    std::vector<Index> dims = input_;
    for (const auto& l : layers_) {
        if (weighted(l)) {
            const Index n = l.weightShape.size();
            const Index want = l.kind == DeployedKind::Conv ? l.out * l.in * l.kernel * l.kernel
                                                            : l.out * l.in;
            if (n != want || l.weightShape.filters() != l.out)
                throw std::runtime_error(where + ": layer '" + l.name + "' has weight shape " +
                                         l.weightShape.str() + TERN_MSG(", expected " << want << " weights"));
            if (l.scale.size() != l.out || l.bias.size() != l.out)
                throw std::runtime_error(where + ": layer '" + l.name + "' needs " +
                                         std::to_string(l.out) + " scales and biases");
            if (l.ternary) {
                if (static_cast<Index>(l.codes.size()) != n || l.groups < 1 || l.out % l.groups != 0 ||
                    l.groupScale.size() != l.groups || l.negRatio.size() != l.groups)
                    throw std::runtime_error(where + ": layer '" + l.name + "' has inconsistent codes or groups");
            } else if (l.weights.size() != n) {
                throw std::runtime_error(where + ": layer '" + l.name + "' has " +
                                         std::to_string(l.weights.size()) + " weights, expected " +
                                         std::to_string(n));
            }
        }
        dims = outDims(l, dims, where);
    }
    if (dims.size() != 1 || dims[0] != classes_)
        throw std::runtime_error(where + ": the network ends in " + dimsStr(dims) +
                                 TERN_MSG(" values, expected " << classes_ << " logits"));
}

DeployedCost TernaryModel::cost() const {
    DeployedCost c;
    c.float32Bits = float32Bits_;
    std::vector<Index> dims = input_;
    for (size_t i = 0; i < layers_.size(); ++i) {
        const DeployedLayer& l = layers_[i];
        const std::vector<Index> o = outDims(l, dims, "TernaryModel::cost()");
        dims = o;
        if (!weighted(l)) continue;
        const Index positions = l.kind == DeployedKind::Conv ? o[1] * o[2] : 1;
        const Index n = l.weightShape.size();
        const double channelBits = 32.0 * 2 * static_cast<double>(l.out);  // s_c, b_c
        const double srcBits = 32.0 * static_cast<double>(n + (l.foldedBatchNorm ? 4 : 1) * l.out);
        if (l.ternary) {
            const bool asym = (l.negRatio.array() != 1.0f).any();
            const double bits = 2.0 * static_cast<double>(n) + channelBits +
                                32.0 * 2 * static_cast<double>(l.groups);
            c.storageBits += bits;
            c.ternaryBits += bits;
            c.ternaryFloat32Bits += srcBits;
            // One add/sub per nonzero weight use, one add per output value for b_c.
            c.additions += (l.nonzeros() + l.out) * positions;
            if (!l.multiplicationFree)
                c.multiplications += l.out * positions * (asym ? 2 : 1);
        } else {
            c.storageBits += 32.0 * static_cast<double>(n) + channelBits;
            const Index macs = n * positions;
            c.multiplications += macs + (hasScale(l) ? l.out * positions : 0);
            c.additions += macs + l.out * positions;
        }
    }
    return c;
}

std::vector<float> TernaryModel::logits(const io::Dataset& data, Index batchSize) {
    if (data.channels != input_.at(0) || data.height != input_.at(1) || data.width != input_.at(2))
        fail("TernaryModel::logits()",
             TERN_MSG("dataset '" << data.name << "' has images " << data.channels << "x"
                                  << data.height << "x" << data.width << ", the model expects "
                                  << dimsStr(input_)));
    requirePositive(static_cast<double>(batchSize), "TernaryModel::logits()", "batchSize");
    const Index b = std::min(batchSize, std::max<Index>(data.count, 1));
    const Index img = data.imageSize();
    std::vector<float> out(static_cast<size_t>(data.count * classes_));
    std::vector<float> buf(static_cast<size_t>(b * img), 0.0f);
    std::vector<float> res(static_cast<size_t>(b * classes_));
    for (Index start = 0; start < data.count; start += b) {
        const Index n = std::min(b, data.count - start);
        std::copy(data.image(start), data.image(start) + n * img, buf.begin());
        std::fill(buf.begin() + n * img, buf.end(), 0.0f);
        logits(buf.data(), b, res.data());
        std::copy(res.begin(), res.begin() + n * classes_, out.begin() + start * classes_);
    }
    return out;
}

void TernaryModel::logits(const float* images, Index count, float* out) {
    requirePositive(static_cast<double>(count), "TernaryModel::logits()", "count");
    if (layers_.empty()) fail("TernaryModel::logits()", "the model is empty");
    if (!engine_) engine_ = std::make_unique<Engine>();
    const float* s = engine_->run(*this, images, count);
    std::copy(s, s + count * classes_, out);
}

std::vector<int> TernaryModel::predict(const io::Dataset& data, Index batchSize) {
    const std::vector<float> s = logits(data, batchSize);
    std::vector<int> out(static_cast<size_t>(data.count));
    for (Index i = 0; i < data.count; ++i) {
        const float* r = s.data() + i * classes_;
        out[i] = static_cast<int>(std::max_element(r, r + classes_) - r);
    }
    return out;
}

double TernaryModel::accuracy(const io::Dataset& data, Index batchSize) {
    if (data.count == 0) return 0;
    const std::vector<int> p = predict(data, batchSize);
    Index correct = 0;
    for (Index i = 0; i < data.count; ++i) correct += p[i] == data.labels[i];
    return static_cast<double>(correct) / static_cast<double>(data.count);
}

// ------------------------------------------------------------------------ folding

TernaryModel TernaryModel::fromNetwork(const Network& net, double tolerance) {
    const char* where = "TernaryModel::fromNetwork()";
    requireInRange(tolerance, 0, 0.5, where, "tolerance");
    TernaryModel m;
    m.input_ = net.inputShape();
    m.classes_ = net.numClasses();
    const auto& ls = net.layers();
    for (size_t i = 0; i < ls.size(); ++i) {
        Layer* layer = ls[i].get();
        const BatchNorm* bn =
            i + 1 < ls.size() ? dynamic_cast<const BatchNorm*>(ls[i + 1].get()) : nullptr;
        DeployedLayer d;
        d.name = layer->name();
        if (auto* conv = dynamic_cast<const Conv2d*>(layer)) {
            d.kind = DeployedKind::Conv;
            d.in = conv->inChannels();
            d.out = conv->outChannels();
            d.kernel = conv->kernel();
            d.stride = conv->stride();
            d.padding = conv->padding();
            foldWeights(d, *conv->weights(), conv->bias(), bn, tolerance);
        } else if (auto* fc = dynamic_cast<const Linear*>(layer)) {
            d.kind = DeployedKind::Fc;
            d.in = fc->inFeatures();
            d.out = fc->outFeatures();
            foldWeights(d, *fc->weights(), fc->bias(), bn, tolerance);
        } else if (auto* pool = dynamic_cast<const MaxPool*>(layer)) {
            d.kind = DeployedKind::Pool;
            d.kernel = pool->kernel();
            d.stride = pool->stride();
        } else if (dynamic_cast<const Relu*>(layer)) {
            d.kind = DeployedKind::Relu;
        } else if (dynamic_cast<const Dropout*>(layer)) {
            continue;  // identity at inference
        } else {
            fail(where, "layer '" + d.name + "' (" + layer->describe() +
                            ") cannot be exported (BN must follow a conv or FC layer)");
        }
        m.layers_.push_back(std::move(d));
        if (bn) {
            ++i;  // folded
            if (bn->fusedRelu()) {
                DeployedLayer r;
                r.name = bn->name();  // the ReLU that BN+ReLU fused
                r.kind = DeployedKind::Relu;
                m.layers_.push_back(std::move(r));
            }
        }
    }
    for (const ParameterBlock* b : const_cast<Network&>(net).parameters().all())
        m.float32Bits_ += 32.0 * static_cast<double>(b->value.size());
    for (const auto& l : ls)
        if (auto* bn = dynamic_cast<const BatchNorm*>(l.get()))
            m.float32Bits_ += 32.0 * 2 * static_cast<double>(bn->channels());
    m.check();
    return m;
}

std::unique_ptr<Network> networkFromCheckpoint(const std::string& path, const ExportOptions& opt,
                                               io::DataSplit* data) {
    const std::string where = "networkFromCheckpoint(): '" + path + "'";
    std::unique_ptr<io::CheckpointReader> r;
    try {
        r = std::make_unique<io::CheckpointReader>(path);
    } catch (const std::runtime_error& e) {
        if (std::string(e.what()).find("format 'tern-model'") != std::string::npos)
            throw std::runtime_error(where + " is a tern model file, not a checkpoint");
        throw;
    }
    auto cfg = [&](const std::string& key) {
        if (!r->hasAttr("config", key))
            throw std::runtime_error(where + " has no config entry '" + key +
                                     "' (not written by tern-train?)");
        return r->attrString("config", key);
    };
    ModelOptions mo;
    const std::string model = cfg("model");
    mo.batchNorm = parseBool(cfg("bn"), "bn", where);
    mo.width = std::stod(cfg("width"));
    mo.dropout = std::stof(cfg("dropout"));
    mo.quantizeFirst = parseBool(cfg("quantize-first"), "quantize-first", where);
    mo.quantizeLast = parseBool(cfg("quantize-last"), "quantize-last", where);
    mo.loss = parseLoss(cfg("loss"));
    const std::string dataset = cfg("dataset");
    std::vector<Index> input = opt.input;
    if (input.empty() && r->has("input/shape")) {  // written by tern-train since session 3
        const Vector s = r->read("input/shape", Shape{3});
        for (Index i = 0; i < 3; ++i) input.push_back(static_cast<Index>(s[i]));
    }
    int classes = 10;
    // The training data gives the image size and the normalization (the checkpoint has neither).
    std::string dir = opt.dataDir;
    if (dir.empty()) dir = r->hasAttr("config", "data-dir") ? cfg("data-dir") : "";
    if (dir.empty()) dir = dataset == "cifar10" ? "data/cifar-10-batches-bin" : "data/" + dataset;
    const Index trainLimit = r->hasAttr("config", "train-limit") ? std::stol(cfg("train-limit")) : 0;
    if (data) {
        std::error_code ec;
        if (fs::is_directory(dir, ec)) {
            try {
                *data = io::loadDataset(dataset, dir, trainLimit, 0);
            } catch (const std::exception&) {
                *data = io::DataSplit{};
            }
        }
        if (data->train.count > 0) {
            if (input.empty()) input = {data->train.channels, data->train.height, data->train.width};
            classes = data->train.numClasses;
        }
    }
    if (input.empty()) input = standardInput(dataset);
    if (input.size() != 3) fail("networkFromCheckpoint()", "input must be C, H, W");
    auto net = makeModel(model, input, classes, mo);
    for (ParameterBlock* b : net->parameters().all()) {
        try {
            b->value = r->read("params/" + b->name, b->shape);
        } catch (const std::invalid_argument& e) {
            throw std::runtime_error(where + ": the model '" + model + "' rebuilt for input " +
                                     dimsStr(input) + " does not match it (" + e.what() +
                                     "); give the image size (--input C,H,W) or the data dir");
        } catch (const std::out_of_range& e) {
            throw std::runtime_error(where + ": " + e.what());
        }
    }
    for (const auto& l : net->layers())
        if (dynamic_cast<const BatchNorm*>(l.get())) l->loadState(*r, "net/");
    return net;
}

TernaryModel TernaryModel::fromCheckpoint(const std::string& path, const ExportOptions& opt) {
    io::DataSplit data;
    // The normalization comes from the checkpoint; older checkpoints need the training data.
    bool recorded = false;
    try {
        recorded = io::CheckpointReader(path).has("input/mean");
    } catch (const std::exception&) {
        // not a readable checkpoint: networkFromCheckpoint() says what is wrong
    }
    auto net = networkFromCheckpoint(path, opt, recorded ? nullptr : &data);
    io::CheckpointReader r(path);
    TernaryModel m;
    try {
        m = fromNetwork(*net, opt.tolerance);
    } catch (const std::runtime_error& e) {
        const std::string method = r.hasAttr("config", "method") ? r.attrString("config", "method") : "?";
        throw std::runtime_error("TernaryModel::fromCheckpoint(): '" + path + "': " + e.what() +
                                 " (method '" + method + "'" +
                                 (method == "fp" ? ": a float baseline has no ternary weights" : "") +
                                 ")");
    }
    for (const auto& k : kInfoKeys)
        if (r.hasAttr("config", k)) m.info_.emplace_back(k, r.attrString("config", k));
    m.info_.emplace_back("checkpoint", path);
    if (recorded) {
        const auto channels = static_cast<Index>(m.input_.at(0));
        const Vector mu = r.read("input/mean", Shape{channels}), sd = r.read("input/std", Shape{channels});
        m.mean_.assign(mu.data(), mu.data() + channels);
        m.stddev_.assign(sd.data(), sd.data() + channels);
    } else if (data.train.count > 0) {
        m.mean_ = data.mean;
        m.stddev_ = data.stddev;
    }
    return m;
}

// ------------------------------------------------------------------------ model file

void TernaryModel::save(const std::string& path, bool int8Codes) const {
    const std::string where = "TernaryModel::save(): '" + path + "'";
    check();
    const std::string stage = path + ".part";
    std::error_code ec;
    try {
        // Stage 1: floats and attributes through CheckpointWriter (atomic onto `stage`).
        io::CheckpointWriter w(stage, "tern-model", 1);
        std::string order;
        for (const auto& l : layers_) {
            if (!order.empty()) order += ',';
            order += l.name;
        }
        w.attr("", "layers", order);
        w.attr("", "classes", static_cast<std::int64_t>(classes_));
        w.attr("", "input_channels", static_cast<std::int64_t>(input_[0]));
        w.attr("", "input_height", static_cast<std::int64_t>(input_[1]));
        w.attr("", "input_width", static_cast<std::int64_t>(input_[2]));
        w.attr("", "multiplication_free", static_cast<std::int64_t>(multiplicationFree()));
        w.attr("", "float32_bits", float32Bits_);
        w.attr("", "code_encoding", "2 bits per code, 4 per byte, first code in the low bits; "
                                    "00 = 0, 01 = +1, 10 = -1");
        for (const auto& [k, v] : info_) w.attr("source", k, v);
        if (!mean_.empty()) {
            const Index c = static_cast<Index>(mean_.size());
            w.write("normalization/mean", Eigen::Map<const Vector>(mean_.data(), c), Shape{c});
            w.write("normalization/std", Eigen::Map<const Vector>(stddev_.data(), c), Shape{c});
        }
        for (size_t i = 0; i < layers_.size(); ++i) {
            const DeployedLayer& l = layers_[i];
            const std::string g = "layers/" + l.name;
            if (weighted(l)) {
                w.write(g + "/scale", l.scale, Shape{l.out});
                w.write(g + "/bias", l.bias, Shape{l.out});
                w.writeInts(g + "/weight_shape", l.weightShape.dims);
                if (l.ternary) {
                    w.write(g + "/group_scale", l.groupScale, Shape{l.groups});
                    w.write(g + "/neg_ratio", l.negRatio, Shape{l.groups});
                } else {
                    w.write(g + "/weights", l.weights, l.weightShape);
                }
                w.attr(g, "in", static_cast<std::int64_t>(l.in));
                w.attr(g, "out", static_cast<std::int64_t>(l.out));
                w.attr(g, "ternary", static_cast<std::int64_t>(l.ternary));
                w.attr(g, "groups", static_cast<std::int64_t>(l.groups));
                w.attr(g, "folded_batch_norm", static_cast<std::int64_t>(l.foldedBatchNorm));
                w.attr(g, "multiplication_free", static_cast<std::int64_t>(l.multiplicationFree));
                w.attr(g, "source_block", l.sourceBlock);
            }
            w.attr(g, "type", kindName(l.kind));
            w.attr(g, "index", static_cast<std::int64_t>(i));
            if (l.kind == DeployedKind::Conv || l.kind == DeployedKind::Pool) {
                w.attr(g, "kernel", static_cast<std::int64_t>(l.kernel));
                w.attr(g, "stride", static_cast<std::int64_t>(l.stride));
            }
            if (l.kind == DeployedKind::Conv) w.attr(g, "padding", static_cast<std::int64_t>(l.padding));
        }
        w.close();
        // Stage 2: the 8-bit code datasets (CheckpointWriter writes float32 / int64 only).
        quietHdf5();
        {
            H5::H5File f(stage, H5F_ACC_RDWR);
            for (const auto& l : layers_) {
                if (!weighted(l) || !l.ternary) continue;
                const std::string g = "/layers/" + l.name;
                const auto packed = packCodes(l.codes);
                writeBytes(f, g + "/codes_packed", packed, {static_cast<Index>(packed.size())});
                if (int8Codes) writeBytes(f, g + "/codes", l.codes, l.weightShape.dims);
            }
            f.close();
        }
        fsyncPath(stage, false);
        fs::rename(stage, path);
        const fs::path dir = fs::path(path).parent_path();
        fsyncPath(dir.empty() ? "." : dir.string(), true);
    } catch (const H5::Exception& e) {
        fs::remove(stage, ec);
        throw std::runtime_error(where + ": HDF5 error: " + h5detail(e));
    } catch (const std::filesystem::filesystem_error& e) {
        fs::remove(stage, ec);
        throw std::runtime_error(where + ": " + e.what());
    } catch (...) {
        fs::remove(stage, ec);
        throw;
    }
}

TernaryModel TernaryModel::load(const std::string& path) {
    const std::string where = "TernaryModel::load(): '" + path + "'";
    TernaryModel m;
    std::unique_ptr<io::CheckpointReader> r;
    try {
        r = std::make_unique<io::CheckpointReader>(path, "tern-model", 1);
    } catch (const std::runtime_error& e) {
        if (std::string(e.what()).find("format 'tern-checkpoint'") != std::string::npos)
            throw std::runtime_error(where + " is a tern checkpoint, not a model file; export it "
                                             "first (tern-export --checkpoint " + path + " --out model.h5)");
        throw;
    }
    try {
        m.classes_ = static_cast<int>(r->attrInt("", "classes"));
        m.input_ = {r->attrInt("", "input_channels"), r->attrInt("", "input_height"),
                    r->attrInt("", "input_width")};
        if (r->hasAttr("", "float32_bits")) m.float32Bits_ = r->attrDouble("", "float32_bits");
        if (r->hasGroup("source"))
            for (const auto& k : kInfoKeys)
                if (r->hasAttr("source", k)) m.info_.emplace_back(k, r->attrString("source", k));
        if (r->has("normalization/mean")) {
            const Index c = m.input_[0];
            const Vector mu = r->read("normalization/mean", Shape{c});
            const Vector sd = r->read("normalization/std", Shape{c});
            m.mean_.assign(mu.data(), mu.data() + c);
            m.stddev_.assign(sd.data(), sd.data() + c);
        }
        std::stringstream order(r->attrString("", "layers"));
        for (std::string name; std::getline(order, name, ',');) {
            const std::string g = "layers/" + name;
            DeployedLayer l;
            l.name = name;
            l.kind = parseKind(r->attrString(g, "type"), where);
            if (l.kind == DeployedKind::Conv || l.kind == DeployedKind::Pool) {
                l.kernel = r->attrInt(g, "kernel");
                l.stride = r->attrInt(g, "stride");
                if (l.kernel < 1 || l.stride < 1)
                    throw std::runtime_error(where + ": layer '" + name + "' has kernel/stride < 1");
            }
            if (l.kind == DeployedKind::Conv) l.padding = r->attrInt(g, "padding");
            if (weighted(l)) {
                l.in = r->attrInt(g, "in");
                l.out = r->attrInt(g, "out");
                if (l.in < 1 || l.out < 1)
                    throw std::runtime_error(where + ": layer '" + name + "' has in/out < 1");
                l.ternary = r->attrInt(g, "ternary") != 0;
                l.groups = r->attrInt(g, "groups");
                l.foldedBatchNorm = r->attrInt(g, "folded_batch_norm") != 0;
                l.multiplicationFree = r->attrInt(g, "multiplication_free") != 0;
                l.sourceBlock = r->attrString(g, "source_block");
                l.weightShape = Shape(r->readInts(g + "/weight_shape"));
                for (Index d : l.weightShape.dims)
                    if (d < 1) throw std::runtime_error(where + ": layer '" + name + "' has a bad weight shape");
                l.scale = r->read(g + "/scale", Shape{l.out});
                l.bias = r->read(g + "/bias", Shape{l.out});
                if (l.ternary) {
                    if (l.groups < 1) throw std::runtime_error(where + ": layer '" + name + "' has groups < 1");
                    l.groupScale = r->read(g + "/group_scale", Shape{l.groups});
                    l.negRatio = r->read(g + "/neg_ratio", Shape{l.groups});
                } else {
                    l.weights = r->read(g + "/weights", l.weightShape);
                }
            }
            m.layers_.push_back(std::move(l));
        }
    } catch (const std::logic_error& e) {  // out_of_range, invalid_argument: missing / wrong shape
        throw std::runtime_error(where + ": not a valid model file: " + e.what());
    }
    r.reset();
    // The 8-bit codes, read with the HDF5 C++ API.
    quietHdf5();
    try {
        H5::H5File f(path, H5F_ACC_RDONLY);
        for (auto& l : m.layers_) {
            if (!weighted(l) || !l.ternary) continue;
            const std::string g = "/layers/" + l.name;
            const Index n = l.weightShape.size();
            const auto packed = readBytes<std::uint8_t>(f, g + "/codes_packed", (n + 3) / 4, where);
            try {
                l.codes = unpackCodes(packed, n);
            } catch (const std::invalid_argument& e) {
                throw std::runtime_error(where + ": layer '" + l.name + "': " + e.what());
            }
            if (f.nameExists(g + "/codes")) {
                const auto codes = readBytes<std::int8_t>(f, g + "/codes", n, where);
                if (codes != l.codes)
                    throw std::runtime_error(where + ": layer '" + l.name +
                                             "': int8 codes and packed codes differ");
            }
        }
    } catch (const H5::Exception& e) {
        throw std::runtime_error(where + ": cannot read the codes: " + h5detail(e));
    }
    m.check();
    return m;
}

}  // namespace tern::nn
