#pragma once
/// \file Optimizers by name, for the apps (--method admm --projection ternary:exact).
#include "tern/optim/admm.hpp"
#include "tern/optim/projected_sgd.hpp"
#include "tern/optim/ste.hpp"

#include <memory>
#include <string>
#include <vector>

namespace tern::optim {

/// Everything makeOptimizer() may need; each method reads its part.
struct MethodSettings {
    std::string projection = "ternary:exact";  ///< makeProjection() spec (admm, pgd, ste)
    Granularity granularity = Granularity::PerTensor;
    std::string quantizer = "ste";             ///< ste: "ste" (straight-through P_C) or "ttq"
    double ttqThreshold = 0.05;                ///< ttq: threshold fraction t
    AdmmSettings admm;
    SteSettings ste;
    InnerSettings inner;
    TrainSettings train;
};

/// "sgd", "pgd", "ste", "admm", and the STE presets "binaryconnect" (binary, latent clip 1),
/// "bwn" (binary:scaled), "twn" (ternary:twn), "ttq" (quantizer ttq); a preset overrides
/// `projection`/`quantizer`. Unknown names throw std::invalid_argument listing the valid ones.
std::unique_ptr<Optimizer> makeOptimizer(const std::string& method,
                                         const MethodSettings& settings = {});
/// Same, with an already-built projection (`settings.projection` is ignored; presets still
/// choose their own set).
std::unique_ptr<Optimizer> makeOptimizer(const std::string& method,
                                         std::shared_ptr<const proj::Projection> projection,
                                         const MethodSettings& settings = {});
/// The valid method names, for help texts.
std::vector<std::string> optimizerNames();

}  // namespace tern::optim
