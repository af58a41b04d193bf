// The fixed gain (include/tern/nn/gain.hpp) on oneDNN's eltwise_linear primitive.
#include "tern/nn/gain.hpp"

#include "layer_util.hpp"
#include "tern/core/error.hpp"

#include <cmath>
#include <sstream>

namespace tern::nn {

using namespace detail;

float gainForFanIn(Index fanIn) {
    requirePositive(static_cast<double>(fanIn), "gainForFanIn()", "fanIn");
    const double k = std::round(std::log2(std::sqrt(static_cast<double>(fanIn) / 2.0)));
    return static_cast<float>(std::ldexp(1.0, -static_cast<int>(k)));
}

namespace {

class GainExec final : public LayerExec {
public:
    GainExec(Context& ctx, Mode mode, const memory::desc& src, float g) : ctx_(ctx) {
        namespace d = dnnl;
        d::eltwise_forward::desc fd(forwardKind(mode), d::algorithm::eltwise_linear, src, g, 0.0f);
        d::eltwise_forward::primitive_desc fpd(fd, ctx.engine);
        fwd_ = d::eltwise_forward(fpd);
        dstMd_ = fpd.dst_desc();
        dst_ = memory(dstMd_, ctx.engine);
        if (mode == Mode::Infer) return;
        d::eltwise_backward::desc bd(d::algorithm::eltwise_linear, src, src, g, 0.0f);
        d::eltwise_backward::primitive_desc bpd(bd, ctx.engine, fpd);
        bwd_ = d::eltwise_backward(bpd);
        diffSrc_ = memory(src, ctx.engine);
    }
    const memory& forward(const memory& src, Pass) override {
        src_ = src;
        fwd_.execute(ctx_.stream, {{DNNL_ARG_SRC, src_}, {DNNL_ARG_DST, dst_}});
        return dst_;
    }
    const memory& backward(const memory& diffDst, bool) override {
        bwd_.execute(ctx_.stream, {{DNNL_ARG_SRC, src_},
                                   {DNNL_ARG_DIFF_DST, const_cast<memory&>(diffDst)},
                                   {DNNL_ARG_DIFF_SRC, diffSrc_}});
        return diffSrc_;
    }

private:
    Context& ctx_;
    dnnl::eltwise_forward fwd_;
    dnnl::eltwise_backward bwd_;
    memory src_, dst_, diffSrc_;
};

}  // namespace

Gain::Gain(std::string name, float gain) : name_(std::move(name)), gain_(gain) {
    if (!(gain > 0) || !std::isfinite(gain))
        fail("Gain()", TERN_MSG(name_ << ": gain must be positive and finite (got " << gain << ")"));
}

std::string Gain::describe() const {
    std::ostringstream s;
    s << name_ << ": x" << gain_ << " (fixed)";
    return s.str();
}

std::unique_ptr<LayerExec> Gain::compile(Context& ctx, const memory::desc& src, Mode mode) {
    return guarded(name_, src.dims(), [&]() -> std::unique_ptr<LayerExec> {
        return std::make_unique<GainExec>(ctx, mode, src, gain_);
    });
}

void Gain::saveState(StateWriter& out, const std::string& prefix) const {
    out.write(prefix + name_ + ".gain", Vector::Constant(1, gain_), Shape{1});
}

void Gain::loadState(const StateReader& in, const std::string& prefix) {
    const std::string key = prefix + name_ + ".gain";
    if (!in.has(key)) return;  // a checkpoint without gains (e.g. --init from a BN-free float run)
    const float g = in.read(key, Shape{1})[0];
    if (!(g > 0) || !std::isfinite(g))
        fail("Gain::loadState()", TERN_MSG(key << " is " << g << ", expected a positive gain"));
    gain_ = g;
}

}  // namespace tern::nn
