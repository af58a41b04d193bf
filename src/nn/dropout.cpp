// Inverted dropout (include/tern/nn/dropout.hpp), its mask drawn from the step's seed.
#include "tern/nn/dropout.hpp"

#include "tern/core/error.hpp"
#include "layer_util.hpp"

#include <cstdint>
#include <functional>
#include <random>

namespace tern::nn {

using namespace detail;

namespace {

class DropoutExec final : public LayerExec {
public:
    DropoutExec(Context& ctx, Mode mode, const memory::desc& src, float p, std::uint64_t salt)
        : ctx_(ctx), mode_(mode), p_(p), salt_(salt) {
        dstMd_ = src;
        n_ = static_cast<Index>(src.get_size() / sizeof(float));
        if (mode == Mode::Train) {
            dst_ = memory(src, ctx.engine);
            diffSrc_ = memory(src, ctx.engine);
            mask_.resize(n_);
        }
    }
    const memory& forward(const memory& src, Pass) override {
        if (mode_ == Mode::Infer || p_ == 0.0f) {
            passthrough_ = src;
            return passthrough_;
        }
        ctx_.stream.wait();
        std::mt19937_64 rng(ctx_.stepSeed ^ salt_);
        std::bernoulli_distribution keep(1.0 - p_);
        const float scale = 1.0f / (1.0f - p_);
        for (Index i = 0; i < n_; ++i) mask_[i] = keep(rng) ? scale : 0.0f;
        Eigen::Map<const Vector> x(static_cast<const float*>(src.get_data_handle()), n_);
        Eigen::Map<Vector> y(static_cast<float*>(dst_.get_data_handle()), n_);
        y = x.cwiseProduct(mask_);
        return dst_;
    }
    const memory& backward(const memory& diffDst, bool) override {
        if (p_ == 0.0f) {
            passthrough_ = diffDst;
            return passthrough_;
        }
        ctx_.stream.wait();
        Eigen::Map<const Vector> dy(static_cast<const float*>(diffDst.get_data_handle()), n_);
        Eigen::Map<Vector> dx(static_cast<float*>(diffSrc_.get_data_handle()), n_);
        dx = dy.cwiseProduct(mask_);
        return diffSrc_;
    }
    std::vector<GradientBuffer> gradientBuffers() override {
        if (mode_ != Mode::Train || p_ == 0.0f) return {};  // p = 0 passes diffDst on
        return {{&diffSrc_, {}}};
    }

private:
    Context& ctx_;
    Mode mode_;
    float p_;
    std::uint64_t salt_;
    Index n_ = 0;
    Vector mask_;
    memory dst_, diffSrc_, passthrough_;
};

}  // namespace

Dropout::Dropout(std::string name, float p) : name_(std::move(name)), p_(p) {
    requireInRange(p_, 0, 0.99, ("Dropout(" + name_ + ")").c_str(), "p");
}

std::unique_ptr<LayerExec> Dropout::compile(Context& ctx, const memory::desc& src, Mode mode) {
    return std::make_unique<DropoutExec>(ctx, mode, src, p_, std::hash<std::string>{}(name_));
}

}  // namespace tern::nn
