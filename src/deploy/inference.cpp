// The oneDNN inference path of a deployed model (include/tern/deploy/inference.hpp).
#include "tern/deploy/inference.hpp"

#include "tern/core/error.hpp"
#include "tern/deploy/model.hpp"
#include "tern/nn/layer.hpp"

#include <algorithm>
#include <deque>
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
        const auto& in = m.input();
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
        const auto& L = m.layers();
        for (size_t i = 0; i < L.size(); ++i) {
            const DeployedLayer& l = L[i];
            const memory::dims srcDims = cur.get_desc().dims();
            try {
                if (l.kind == DeployedKind::Pool) {
                    const memory::dims dstDims{srcDims[0], srcDims[1],
                                               (srcDims[2] - l.kernel) / l.stride + 1,
                                               (srcDims[3] - l.kernel) / l.stride + 1};
                    d::pooling_forward::desc fd(
                        d::prop_kind::forward_inference, d::algorithm::pooling_max, cur.get_desc(),
                        any(dstDims), {l.stride, l.stride}, {l.kernel, l.kernel}, {0, 0}, {0, 0});
                    d::pooling_forward::primitive_desc pd(fd, eng);
                    memory dst(pd.dst_desc(), eng);
                    steps.push_back(
                        {d::pooling_forward(pd), {{DNNL_ARG_SRC, cur}, {DNNL_ARG_DST, dst}}});
                    cur = dst;
                    continue;
                }
                if (l.kind == DeployedKind::Relu) {
                    d::eltwise_forward::desc fd(d::prop_kind::forward_inference,
                                                d::algorithm::eltwise_relu, cur.get_desc(), 0.0f);
                    d::eltwise_forward::primitive_desc pd(fd, eng);
                    memory dst(pd.dst_desc(), eng);
                    steps.push_back(
                        {d::eltwise_forward(pd), {{DNNL_ARG_SRC, cur}, {DNNL_ARG_DST, dst}}});
                    cur = dst;
                    continue;
                }
                // Conv / Fc: y = s_c * (W * x) + b_c, then ReLU if the next layer is one.
                const bool conv = l.kind == DeployedKind::Conv;
                const bool relu = i + 1 < L.size() && L[i + 1].kind == DeployedKind::Relu;
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
                std::unordered_map<int, memory> args{
                    {DNNL_ARG_SRC, cur}, {DNNL_ARG_WEIGHTS, w}, {DNNL_ARG_DST, dst}};
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
        const memory::desc outMd({n, m.classes()}, dt::f32, tag::nc);
        if (cur.get_desc().dims() != outMd.dims())
            throw std::runtime_error("TernaryModel: the last layer does not produce the logits");
        toFormat(outMd);
        out = cur;
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
        for (auto& s : steps) s.prim.execute(ctx.stream, s.args);
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
