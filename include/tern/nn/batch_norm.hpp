#pragma once
/// \file Batch normalization (oneDNN's, with running statistics kept by the layer).
#include "tern/nn/layer.hpp"

namespace tern::nn {

/// Batch normalization over channels with learned gamma/beta. oneDNN keeps no running
/// statistics; this layer does, updating them on Pass::Commit only:
///   running = (1 - momentum) * running + momentum * batch  (variance unbiased).
/// With `fuseRelu`, the layer computes max(0, BN(x)) in one pass (oneDNN's fuse_norm_relu),
/// saving a read and a write of the activation forward and backward.
class BatchNorm final : public Layer {
public:
    BatchNorm(std::string name, Index channels, float epsilon = 1e-5f, float momentum = 0.1f,
              bool fuseRelu = false);
    std::string describe() const override {
        return name_ + (fuseRelu_ ? ": batch norm + ReLU" : ": batch norm");
    }
    std::string name() const override { return name_; }
    void declare(ParameterSet& params) override;
    void initialize(std::mt19937_64& rng) override;
    dnnl::memory::dims outputDims(const dnnl::memory::dims& src) const override { return src; }
    std::unique_ptr<LayerExec> compile(Context& ctx, const dnnl::memory::desc& src,
                                       Mode mode) override;
    void saveState(StateWriter& out, const std::string& prefix) const override;
    void loadState(const StateReader& in, const std::string& prefix) override;

    Index channels() const { return c_; }
    float epsilon() const { return eps_; }
    float momentum() const { return momentum_; }
    /// Changes the running-average factor (Network::recalibrateBatchNorm uses 1/k).
    void setMomentum(float m) { momentum_ = m; }
    bool fusedRelu() const { return fuseRelu_; }
    ParameterBlock* gamma() const { return gamma_; }
    ParameterBlock* beta() const { return beta_; }
    Vector& runningMean() { return runningMean_; }
    Vector& runningVar() { return runningVar_; }
    const Vector& runningMean() const { return runningMean_; }
    const Vector& runningVar() const { return runningVar_; }

private:
    std::string name_;
    Index c_;
    float eps_, momentum_;
    bool fuseRelu_;
    ParameterBlock* gamma_ = nullptr;
    ParameterBlock* beta_ = nullptr;
    Vector runningMean_, runningVar_;
};

}  // namespace tern::nn
