#pragma once
/// \file Model zoo: LeNet-5 and VGG-7 as in the TWN paper, and a small MLP/CNN for tests.
#include "tern/nn/network.hpp"
#include "tern/nn/weighted_layer.hpp"

#include <memory>
#include <string>
#include <vector>

namespace tern::nn {

/// The shortcut of a residual block whose stride or width changes.
enum class Shortcut {
    Auto,        ///< the model's own: option A for the CIFAR ResNets, projection for ResNet-18
    OptionA,     ///< stride-2 subsampling + zero channels (He et al. 2016, TTQ): no parameters
    Projection,  ///< 1x1 convolution (stride 2) + BN, quantized like the other convolutions
};

/// "auto", "a" (option A), "projection" -> Shortcut; std::invalid_argument listing them otherwise.
Shortcut parseShortcut(const std::string& name);

struct ModelOptions {
    bool batchNorm = true;       ///< BN after every conv/FC but the last (the ablation turns it off)
    double width = 1.0;          ///< channel multiplier (VGG-7 on a CPU budget)
    float dropout = 0.0f;        ///< dropout before the last FC layer (0 = none)
    bool quantizeFirst = false;  ///< the first layer is a quantization target
    bool quantizeLast = false;   ///< the last layer is a quantization target
    Loss loss = Loss::SoftmaxCrossEntropy;
    /// Without BN: a fixed power-of-two Gain (gainForFanIn(fan-in), nn/gain.hpp) after every
    /// quantized conv / FC layer ("gain<n>" after conv<n>, "gain_fc<n>" after fc<n>), for
    /// fixed-scale (alpha = 1) sets, whose codes {-1, 0, +1} have no scale of their own.
    /// Ignored with BN. Export folds the gains exactly (powers of two).
    bool gains = false;
    WeightInit weightInit = WeightInit::HeNormal;  ///< how conv / FC layers start
    Shortcut shortcut = Shortcut::Auto;            ///< residual networks' changing shortcuts
    void validate() const;
};

/// 32-C5, MP2, 64-C5, MP2, 512-FC, 10 (TWN paper), on {C, H, W} inputs.
std::unique_ptr<Network> lenet5(std::vector<Index> input, int classes, const ModelOptions& = {});
/// 16-C5, MP2, 36-C5, MP2, 128-FC, 10: GTC's MNIST network (seed 004, section 4), smaller
/// than LeNet-5; the paper quantizes all four layers and has no BN.
std::unique_ptr<Network> gtcLenet(std::vector<Index> input, int classes, const ModelOptions& = {});
/// 2x128-C3, MP2, 2x256-C3, MP2, 2x512-C3, MP2, 1024-FC, 10, channels times `width`.
std::unique_ptr<Network> vgg7(std::vector<Index> input, int classes, const ModelOptions& = {});
/// VGG-16 (configuration D, Simonyan & Zisserman) for 32x32 inputs, as GTC's CIFAR-10 network
/// (seed 004): 2x64, 2x128, 3x256, 3x512, 3x512 3x3 convolutions with BN + ReLU, a 2x2 max pool
/// after each block, then 512-FC and the classifier; channels times `width`. The paper's dropout
/// after alternating conv layers is not modelled (ModelOptions::dropout: before the last FC).
std::unique_ptr<Network> vgg16(std::vector<Index> input, int classes, const ModelOptions& = {});
/// A small CNN (8-C3, MP2, 16-FC, classes) for tests and quick checks.
std::unique_ptr<Network> tinyCnn(std::vector<Index> input, int classes, const ModelOptions& = {});
/// CIFAR-style ResNet of `depth` = 6n + 2 layers (He et al. 2016, section 4.2; TTQ's CIFAR-10
/// networks): 16-C3 + BN + ReLU, three stages of n basic blocks with 16, 32, 64 channels
/// (times `width`; stride 2 at the first block of stages 2 and 3), global average pooling,
/// the classifier "fc". Block "s<stage>b<k>": conv1, bn1 (+ ReLU), conv2, bn2, then "add"
/// (sum + ReLU) with the shortcut: identity, or where the shape changes option A
/// ("shortcut", default) or a projection ("down" 1x1 conv + "down_bn"). Without BN the convs
/// get biases (and fixed gains with ModelOptions::gains). Any input size (32x32 in the paper;
/// 28x28 works).
std::unique_ptr<Network> cifarResnet(int depth, std::vector<Index> input, int classes,
                                     const ModelOptions& = {});
/// ResNet-18 (He et al. 2016, ImageNet): 64-C7/2 + BN + ReLU, 3x3/2 max pool (padding 1), four
/// stages of two basic blocks (64, 128, 256, 512 channels; stride 2 and a projection shortcut
/// at the first block of stages 2-4, or option A if asked), global average pooling, fc. Inputs
/// of at least 32x32 (std::invalid_argument below).
std::unique_ptr<Network> resnet18(std::vector<Index> input, int classes, const ModelOptions& = {});
/// By name: "lenet5", "gtc-lenet", "vgg7", "vgg16", "tiny", "resnet20", "resnet32", "resnet44",
/// "resnet56", "resnet18". Unknown names throw std::invalid_argument listing them.
std::unique_ptr<Network> makeModel(const std::string& name, std::vector<Index> input, int classes,
                                   const ModelOptions& = {});
std::vector<std::string> modelNames();

}  // namespace tern::nn
