#pragma once
/// \file The concrete layers: convolution, inner product, batch normalization, ReLU,
/// max pooling, dropout, the fixed gain and the residual layers (add, global pooling, option-A shortcut) (one header each; this one includes them all).
#include "tern/nn/batch_norm.hpp"
#include "tern/nn/conv2d.hpp"
#include "tern/nn/dropout.hpp"
#include "tern/nn/gain.hpp"
#include "tern/nn/layer.hpp"
#include "tern/nn/linear.hpp"
#include "tern/nn/pooling.hpp"
#include "tern/nn/relu.hpp"
#include "tern/nn/residual.hpp"
#include "tern/nn/weighted_layer.hpp"
