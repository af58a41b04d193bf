// The oneDNN inference path of a deployed model (include/tern/deploy/inference.hpp).
#include "tern/deploy/inference.hpp"

#include "tern/core/error.hpp"
#include "tern/deploy/model.hpp"
#include "tern/nn/layer.hpp"

#include <algorithm>
#include <deque>
#include <functional>
#include <stdexcept>
#include <unordered_map>

namespace tern::deploy {

using dnnl::memory;
using dt = memory::data_type;
using tag = memory::format_tag;

struct InferenceEngine::Impl {
    nn::Context ctx;
    Index batch = -1;
    std::vector<float> input;
    memory inputMem;
    struct Step {
        dnnl::primitive prim;
        std::unordered_map<int, memory> args;
        std::function<void()> loop;  // a step of tern's own (option-A shortcut) instead
    };
    std::vector<Step> steps;
    std::deque<Vector> buffers;  // user weights / scales / biases the memories point into
    memory out;                  // plain {N, classes}
    memory outOwner;             // the buffer `out` views when the last layer is a global pool

    void build(const TernaryModel& m, Index n) {
        namespace d = dnnl;
        steps.clear();
        buffers.clear();
        batch = n;
        auto& eng = ctx.engine;
        const auto& in = m.input();
        input.assign(static_cast<size_t>(n * in[0] * in[1] * in[2]), 0.0f);
        memory::desc curMd({n, in[0], in[1], in[2]}, dt::f32, tag::nchw);
        inputMem = memory(curMd, eng, input.data());
        auto any = [](const memory::dims& dd) { return memory::desc(dd, dt::f32, tag::any); };
        auto wrap = [&](const Vector& v, const memory::desc& md) {
            buffers.push_back(v);
            return memory(md, eng, buffers.back().data());
        };
        // A memory in `want`: `m` itself, or a reorder of it (one more step).
        auto convert = [&](const memory& m, const memory::desc& want) {
            if (m.get_desc() == want) return m;
            memory next(want, eng);
            steps.push_back({d::reorder(m, next), {{DNNL_ARG_FROM, m}, {DNNL_ARG_TO, next}}, {}});
            return next;
        };
        const auto& L = m.layers();
        std::vector<memory> outs(L.size());  // each layer's output (a fused ReLU shares it)
        std::vector<bool> fused(L.size(), false);
        auto srcOf = [&](int j) { return j < 0 ? inputMem : outs[static_cast<size_t>(j)]; };
        memory cur;
        for (size_t i = 0; i < L.size(); ++i) {
            if (fused[i]) continue;
            const DeployedLayer& l = L[i];
            cur = srcOf(l.inputs.at(0));
            const memory::dims srcDims = cur.get_desc().dims();
            // The ReLU after a conv / fc / add runs as its post-op when it is that layer's only
            // reader and reads nothing else.
            const bool relu = i + 1 < L.size() && L[i + 1].kind == DeployedKind::Relu &&
                              L[i + 1].inputs == std::vector<int>{static_cast<int>(i)} &&
                              m.consumersOf(i) == std::vector<int>{static_cast<int>(i + 1)};
            d::post_ops reluOp;
            reluOp.append_eltwise(1.0f, d::algorithm::eltwise_relu, 0.0f, 0.0f);
            try {
                if (l.kind == DeployedKind::Pool || l.kind == DeployedKind::GlobalPool) {
                    const bool global = l.kind == DeployedKind::GlobalPool;
                    const Index k0 = global ? srcDims[2] : l.kernel, k1 = global ? srcDims[3] : l.kernel;
                    const Index st = global ? 1 : l.stride, pad = global ? 0 : l.padding;
                    const memory::dims dstDims{srcDims[0], srcDims[1],
                                               (srcDims[2] + 2 * pad - k0) / st + 1,
                                               (srcDims[3] + 2 * pad - k1) / st + 1};
                    d::pooling_forward::desc fd(
                        d::prop_kind::forward_inference,
                        global ? d::algorithm::pooling_avg_exclude_padding : d::algorithm::pooling_max,
                        cur.get_desc(), any(dstDims), {st, st}, {k0, k1}, {pad, pad}, {pad, pad});
                    d::pooling_forward::primitive_desc pd(fd, eng);
                    memory dst(pd.dst_desc(), eng);
                    steps.push_back(
                        {d::pooling_forward(pd), {{DNNL_ARG_SRC, cur}, {DNNL_ARG_DST, dst}}, {}});
                    outs[i] = dst;
                    continue;
                }
                if (l.kind == DeployedKind::Relu) {
                    d::eltwise_forward::desc fd(d::prop_kind::forward_inference,
                                                d::algorithm::eltwise_relu, cur.get_desc(), 0.0f);
                    d::eltwise_forward::primitive_desc pd(fd, eng);
                    memory dst(pd.dst_desc(), eng);
                    steps.push_back(
                        {d::eltwise_forward(pd), {{DNNL_ARG_SRC, cur}, {DNNL_ARG_DST, dst}}, {}});
                    outs[i] = dst;
                    continue;
                }
                if (l.kind == DeployedKind::Add) {
                    const memory b = convert(srcOf(l.inputs.at(1)), cur.get_desc());
                    d::binary::desc bd(d::algorithm::binary_add, cur.get_desc(), b.get_desc(),
                                       cur.get_desc());
                    d::primitive_attr attr;
                    if (relu) attr.set_post_ops(reluOp);
                    d::binary::primitive_desc pd(bd, attr, eng);
                    memory dst(pd.dst_desc(), eng);
                    steps.push_back({d::binary(pd),
                                     {{DNNL_ARG_SRC_0, cur}, {DNNL_ARG_SRC_1, b}, {DNNL_ARG_DST, dst}},
                                     {}});
                    outs[i] = dst;
                    if (relu) {
                        outs[i + 1] = dst;
                        fused[i + 1] = true;
                    }
                    continue;
                }
                if (l.kind == DeployedKind::Shortcut) {
                    // y[c + p] = x[c] at every stride-th row and column, other channels 0 (nchw)
                    const memory x = convert(cur, memory::desc(srcDims, dt::f32, tag::nchw));
                    const Index C = srcDims[1], H = srcDims[2], W = srcDims[3];
                    const Index O = l.out, s = l.stride, p = (l.out - l.in) / 2;
                    const Index oh = (H - 1) / s + 1, ow = (W - 1) / s + 1;
                    memory dst(memory::desc({n, O, oh, ow}, dt::f32, tag::nchw), eng);
                    steps.push_back({{}, {}, [x, dst, n, C, H, W, O, s, p, oh, ow] {
                                         const auto* xp = static_cast<const float*>(x.get_data_handle());
                                         auto* yp = static_cast<float*>(dst.get_data_handle());
                                         std::fill(yp, yp + n * O * oh * ow, 0.0f);
                                         for (Index a = 0; a < n; ++a)
                                             for (Index c = 0; c < C; ++c)
                                                 for (Index y = 0; y < oh; ++y)
                                                     for (Index z = 0; z < ow; ++z)
                                                         yp[((a * O + c + p) * oh + y) * ow + z] =
                                                             xp[((a * C + c) * H + y * s) * W + z * s];
                                     }});
                    outs[i] = dst;
                    continue;
                }
                // Conv / Fc: y = s_c * (W * x) + b_c, then ReLU if the next layer is one.
                const bool conv = l.kind == DeployedKind::Conv;
                const bool scaled = l.scaled();
                memory::dims wDims{l.out};
                if (conv)
                    wDims = {l.out, l.in, l.kernel, l.kernel};
                else
                    wDims.insert(wDims.end(), srcDims.begin() + 1, srcDims.end());
                const tag wTag = wDims.size() == 4 ? tag::oihw : tag::oi;
                const memory::dims dstDims =
                    conv ? memory::dims{n, l.out,
                                        (srcDims[2] + 2 * l.padding - l.kernel) / l.stride + 1,
                                        (srcDims[3] + 2 * l.padding - l.kernel) / l.stride + 1}
                         : memory::dims{n, l.out};
                const memory::desc bMd =
                    scaled ? memory::desc() : memory::desc({l.out}, dt::f32, tag::a);
                const memory::dims cDims =
                    conv ? memory::dims{1, l.out, 1, 1} : memory::dims{1, l.out};
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
                    d::inner_product_forward::desc fd(d::prop_kind::forward_inference, any(srcDims),
                                                      any(wDims), bMd, any(dstDims));
                    d::inner_product_forward::primitive_desc pd(fd, attr, eng);
                    srcMd = pd.src_desc();
                    wMd = pd.weights_desc();
                    dstMd = pd.dst_desc();
                    prim = d::inner_product_forward(pd);
                }
                cur = convert(cur, srcMd);
                // The weights are constant: reorder them once, here.
                memory userW = wrap(l.effectiveWeights(), memory::desc(wDims, dt::f32, wTag));
                memory w = userW;
                if (wMd != userW.get_desc()) {
                    w = memory(wMd, eng);
                    d::reorder(userW, w).execute(ctx.stream, userW, w);
                    ctx.stream.wait();
                }
                memory dst(dstMd, eng);
                std::unordered_map<int, memory> args{
                    {DNNL_ARG_SRC, cur}, {DNNL_ARG_WEIGHTS, w}, {DNNL_ARG_DST, dst}};
                if (scaled) {
                    args[DNNL_ARG_ATTR_MULTIPLE_POST_OP(0) | DNNL_ARG_SRC_1] = wrap(l.scale, cMd);
                    args[DNNL_ARG_ATTR_MULTIPLE_POST_OP(1) | DNNL_ARG_SRC_1] = wrap(l.bias, cMd);
                } else {
                    args[DNNL_ARG_BIAS] = wrap(l.bias, bMd);
                }
                steps.push_back({prim, std::move(args), {}});
                outs[i] = dst;
                if (relu) {
                    outs[i + 1] = dst;
                    fused[i + 1] = true;
                }
            } catch (const dnnl::error& e) {
                throw std::runtime_error(TERN_MSG("TernaryModel: oneDNN failed on layer '"
                                                  << l.name << "' (" << kindName(l.kind)
                                                  << ", batch " << n << "): " << e.what()));
            }
        }
        cur = outs.back();
        const memory::desc outMd({n, m.classes()}, dt::f32, tag::nc);
        if (cur.get_desc().dims() == memory::dims{n, m.classes(), 1, 1}) {
            // a global pool last: (N, C, 1, 1) in nchw holds the bytes of (N, C)
            outOwner = convert(cur, memory::desc(cur.get_desc().dims(), dt::f32, tag::nchw));
            out = memory(outMd, eng, outOwner.get_data_handle());
            return;
        }
        if (cur.get_desc().dims() != outMd.dims())
            throw std::runtime_error("TernaryModel: the last layer does not produce the logits");
        out = convert(cur, outMd);
    }

    const float* run(const TernaryModel& m, const float* images, Index n) {
        if (batch != n) build(m, n);
        std::copy(images, images + static_cast<Index>(input.size()), input.begin());
        // A raw-input model whose mean could not fold into the first layer (zero padding):
        // the input offset, one subtraction per pixel.
        const std::vector<float>& off = m.folding().inputOffset;
        if (!off.empty()) {
            const auto& d = m.input();
            const Index plane = d[1] * d[2];
            for (Index img = 0; img < n; ++img)
                for (Index c = 0; c < d[0]; ++c) {
                    float* p = input.data() + (img * d[0] + c) * plane;
                    for (Index j = 0; j < plane; ++j) p[j] -= off[static_cast<size_t>(c)];
                }
        }
        for (auto& s : steps) {
            if (s.loop) {
                ctx.stream.wait();
                s.loop();
            } else {
                s.prim.execute(ctx.stream, s.args);
            }
        }
        ctx.stream.wait();
        return static_cast<const float*>(out.get_data_handle());
    }
};

InferenceEngine::InferenceEngine() : impl_(std::make_unique<Impl>()) {}
InferenceEngine::~InferenceEngine() = default;

const float* InferenceEngine::run(const TernaryModel& model, const float* images, Index count) {
    return impl_->run(model, images, count);
}

}  // namespace tern::deploy
