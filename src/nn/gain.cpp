// The fixed gain (include/tern/nn/gain.hpp) on oneDNN's eltwise_linear primitive.
#include "tern/nn/gain.hpp"

#include "eltwise_exec.hpp"
#include "tern/core/error.hpp"

#include <algorithm>
#include <cmath>
#include <sstream>

namespace tern::nn {

using namespace detail;

float gainForFanIn(Index fanIn) {
    requirePositive(static_cast<double>(fanIn), "gainForFanIn()", "fanIn");
    const double k = std::round(std::log2(std::sqrt(static_cast<double>(fanIn) / 2.0)));
    return static_cast<float>(std::ldexp(1.0, -static_cast<int>(k)));
}

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
        return std::make_unique<EltwiseExec>(ctx, mode, src, dnnl::algorithm::eltwise_linear, gain_);
    });
}

namespace {
const std::string kGainSuffix = ".gain";  // a Gain's state key: "<prefix><name>.gain"
}  // namespace

bool hasGainState(const std::vector<std::string>& keys) {
    return std::any_of(keys.begin(), keys.end(), [](const std::string& k) {
        return k.size() > kGainSuffix.size() &&
               k.compare(k.size() - kGainSuffix.size(), kGainSuffix.size(), kGainSuffix) == 0;
    });
}

void Gain::saveState(StateWriter& out, const std::string& prefix) const {
    out.write(prefix + name_ + kGainSuffix, Vector::Constant(1, gain_), Shape{1});
}

void Gain::loadState(const StateReader& in, const std::string& prefix) {
    const std::string key = prefix + name_ + kGainSuffix;
    if (!in.has(key)) return;  // a checkpoint without gains (e.g. --init from a BN-free float run)
    const float g = in.read(key, Shape{1})[0];
    if (!(g > 0) || !std::isfinite(g))
        fail("Gain::loadState()", TERN_MSG(key << " is " << g << ", expected a positive gain"));
    gain_ = g;
}

}  // namespace tern::nn
