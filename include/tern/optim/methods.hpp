#pragma once
/// \file The method registry: every training method by name, in one place. tern-train,
/// tern-lsq, tern-ablate and the library resolve names and aliases here, and build the
/// optimizer from the method's own settings struct (validated once, by that struct).
///
///     optim::MethodConfig m;
///     m.method = "admm";                    // or an alias
///     m.projection = "ternary:exact,scale=one";
///     m.admm.rho = 1e-3;
///     auto opt = optim::makeOptimizer(m, train);   // TrainSettings: epochs, seed, lr schedule
///     opt->levels();  opt->freeScale();            // from the projection / quantizer
#include "tern/optim/admm.hpp"
#include "tern/optim/block_sets.hpp"
#include "tern/optim/partial.hpp"
#include "tern/optim/projected_sgd.hpp"
#include "tern/optim/ste.hpp"
#include "tern/proj/gtc.hpp"

#include <memory>
#include <string>
#include <vector>

namespace tern::optim {

/// Everything that selects and configures a method. Each method reads only its own settings
/// struct (and the inner update), so a value has one valid range: its struct's validate().
struct MethodConfig {
    std::string method = "fp";  ///< a name or alias of methods()
    /// makeProjection() spec for the methods that project (bc, bwn, twn, admm, pgd, rpr);
    /// empty = the method's default set (MethodInfo::defaultProjection). Per layer
    /// (parseProjectionSpec(), block_sets.hpp): "conv2=ternary:exact,fc1=pow2:bits=3/filter",
    /// optionally after a default spec; layers not named keep the default. "layer=float"
    /// entries are for the objective (run::train() leaves that layer's blocks unconstrained);
    /// fp, ttq, gtc and inc, which have no projection, take only those (a set entry is an
    /// error) and ignore a plain spec.
    std::string projection;
    Granularity granularity = Granularity::PerTensor;  ///< where an entry gives none
    InnerSettings inner;                 ///< SGD or Adam on every float coordinate
    AdmmSettings admm;                   ///< admm
    PgdSettings pgd;                     ///< pgd
    /// bc, bwn, twn, ttq, gtc (bc forces latentClip 1; gtc takes its trainableLr from
    /// gtcThetaLr and its teacher from the gtc fields below). bitPenalty (GTC's lambda2, with
    /// its schedule bitPenaltyEvery / bitPenaltyDecay) needs gtc.
    SteSettings ste;
    double ttqThreshold = 0.05;          ///< ttq, inc: TTQ's threshold fraction t, [0, 1)
    proj::GtcSettings gtc;               ///< gtc: the zero threshold eps, the initial theta
    /// gtc: learning-rate factor of theta1, theta2 (SteSettings::trainableLr of the gtc
    /// optimizer; ste.trainableLr is TTQ's, whose scale gradients sum a whole group).
    double gtcThetaLr = 1.0;
    /// gtc: the paper's distillation (SteSettings::jointTeacher): a float teacher at W trained
    /// beside the quantized student, loss L(teacher) + gtcDistillWeight * D + ste.bitPenalty * B.
    /// false: the student alone on its own loss (the paper's STE / STE+Bit baselines, and
    /// gtcThetaLr = 0 for their fixed theta = (0, 1)). tern-train's recipe turns it on.
    bool gtcJointTeacher = false;
    double gtcDistillWeight = 0.8;       ///< gtc: lambda1 (the paper's Figure 3), with the teacher
    double gtcDistillTemperature = 1.0;  ///< gtc: T of D (1: the paper's softmax cross-entropy)
    RprSettings rpr;                     ///< rpr
    IncrementalSettings inc;             ///< inc

    /// Resolves the method and validates what it uses (its settings struct, the inner update,
    /// the projection spec). Throws std::invalid_argument naming the field or listing the
    /// known methods.
    void validate() const;
};

/// One registered method.
struct MethodInfo {
    std::string name;                  ///< canonical name ("admm"), the one stored in files
    std::vector<std::string> aliases;  ///< other accepted names ("binaryconnect" for bc)
    std::string summary;               ///< one line for help texts
    /// Default projection spec ("" for methods without one: fp, ttq, gtc, inc).
    std::string defaultProjection;
    /// Builds the optimizer; its constructor validates the settings it takes. `projection`
    /// is the resolved spec (empty where the method has none).
    std::unique_ptr<Optimizer> (*make)(const MethodConfig& config, const std::string& projection,
                                       const TrainSettings& train);
};

/// Every method, in the order of help texts: fp, bc, bwn, twn, ttq, gtc, admm, pgd, rpr, inc.
const std::vector<MethodInfo>& methods();
/// The canonical names, in that order.
std::vector<std::string> methodNames();
/// The method with this name or alias. Throws std::invalid_argument
/// "unknown method 'x'; known: fp, bc, ..." otherwise.
const MethodInfo& findMethod(const std::string& nameOrAlias);
/// The projection spec a config resolves to: its own, else the method's default ("" for
/// methods without a projection); per-layer entries without a default spec get the method's
/// default in front ("conv1=pow2,bits=3" -> "ternary:exact,conv1=pow2,bits=3").
std::string resolvedProjection(const MethodConfig& config);

/// The per-block sets of a config whose method projects (bc, bwn, twn, admm, pgd, rpr): the
/// resolved spec's default and per-layer entries ("layer=float" entries as float sets), each
/// on the config's granularity unless it gives its own. Throws std::invalid_argument for a
/// method without a projection, or a spec that does not parse.
BlockSets makeBlockSets(const MethodConfig& config);

/// Builds the config's optimizer with the loop settings `train` (the constructors validate
/// the settings; unknown names throw as findMethod()).
std::unique_ptr<Optimizer> makeOptimizer(const MethodConfig& config,
                                         const TrainSettings& train = {});

}  // namespace tern::optim
