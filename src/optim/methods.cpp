// The method registry (larq-style lookup: unknown names fail with the list of valid ones).
#include "tern/optim/methods.hpp"

#include "tern/core/error.hpp"
#include "tern/core/format.hpp"
#include "tern/proj/quantizer.hpp"

#include <algorithm>

namespace tern::optim {

namespace {

using Projection = std::shared_ptr<const proj::Projection>;

/// The per-block sets of a resolved spec: its default (the method's where it names none) and
/// its per-layer entries, each on the config's granularity unless it gives its own ("/filter").
BlockSets blockSets(const MethodConfig& c, const std::string& spec) {
    const ProjectionSpec parsed = parseProjectionSpec(spec);
    BlockSets sets(proj::makeProjection(parsed.defaultSpec),
                   parsed.defaultGranularity.value_or(c.granularity));
    for (const LayerSetSpec& l : parsed.layers)
        sets.set(l.name, l.isFloat() ? nullptr : Projection(proj::makeProjection(l.spec)),
                 l.granularity.value_or(c.granularity));
    return sets;
}

/// Methods without a projection (fp, ttq, gtc, inc) take per-layer entries that leave a layer
/// float ("fc1=float": the objective leaves its block unconstrained), and no set: their
/// quantizer is the method's own. A plain spec is ignored, as it always was.
void requireOnlyFloatEntries(const MethodConfig& c) {
    const ProjectionSpec parsed = parseProjectionSpec(c.projection);
    for (const LayerSetSpec& l : parsed.layers)
        if (!l.isFloat())
            fail("MethodConfig::validate()",
                 "projection entry '" + l.str() + "': method " + findMethod(c.method).name +
                     " has no projection (its own quantizer on every constrained layer); only "
                     "'layer=float' entries, which leave a layer float, apply to it");
}

QuantizerFactory ttqFactory(double threshold, Granularity g) {
    const auto t = static_cast<Scalar>(threshold);
    return [t, g] { return proj::makeTtq(t, g); };
}

std::unique_ptr<Optimizer> makeFp(const MethodConfig& c, const std::string&,
                                  const TrainSettings& train) {
    requireOnlyFloatEntries(c);
    return std::make_unique<Sgd>(c.inner, train);
}

/// BinaryConnect, BWN, TWN: straight-through estimation through P_C.
std::unique_ptr<Optimizer> makeSteMethod(const MethodConfig& c, const std::string& spec,
                                         const TrainSettings& train) {
    return std::make_unique<Ste>(blockSets(c, spec), c.ste, c.inner, train);
}

std::unique_ptr<Optimizer> makeBc(const MethodConfig& c, const std::string& spec,
                                  const TrainSettings& train) {
    SteSettings ste = c.ste;
    ste.latentClip = 1;  // BinaryConnect clips the latent to [-1, 1]
    return std::make_unique<Ste>(blockSets(c, spec), ste, c.inner, train);
}

std::unique_ptr<Optimizer> makeTtq(const MethodConfig& c, const std::string&,
                                   const TrainSettings& train) {
    requireOnlyFloatEntries(c);
    return std::make_unique<Ste>(ttqFactory(c.ttqThreshold, c.granularity), c.ste, c.inner, train);
}

/// Generalized Ternary Connect: STE through GTC's quantizer (one trained theta per layer), with
/// the bit penalty SteSettings::bitPenalty (lambda2) and, with gtcJointTeacher, the float
/// teacher sharing W (lambda1 = gtcDistillWeight). gtcThetaLr 0 fixes theta (the baselines).
std::unique_ptr<Optimizer> makeGtc(const MethodConfig& c, const std::string&,
                                   const TrainSettings& train) {
    requireOnlyFloatEntries(c);
    if (c.granularity != Granularity::PerTensor)
        fail("MethodConfig::validate()",
             "granularity must be tensor for gtc (one theta1, theta2 per layer; got filter)");
    requireNonNegative(c.gtcThetaLr, "MethodConfig::validate()", "gtcThetaLr");
    requireNonNegative(c.gtcDistillWeight, "MethodConfig::validate()", "gtcDistillWeight");
    requirePositive(c.gtcDistillTemperature, "MethodConfig::validate()", "gtcDistillTemperature");
    SteSettings ste = c.ste;
    ste.trainableLr = c.gtcThetaLr;
    ste.jointTeacher = c.gtcJointTeacher;
    ste.distillWeight = c.gtcJointTeacher ? c.gtcDistillWeight : 0.0;
    ste.distillTemperature = c.gtcDistillTemperature;
    const proj::GtcSettings g = c.gtc;
    return std::make_unique<Ste>([g] { return proj::makeGtc(g); }, ste, c.inner, train);
}

std::unique_ptr<Optimizer> makeAdmm(const MethodConfig& c, const std::string& spec,
                                    const TrainSettings& train) {
    return std::make_unique<Admm>(blockSets(c, spec), c.admm, c.inner, train);
}

std::unique_ptr<Optimizer> makePgd(const MethodConfig& c, const std::string& spec,
                                   const TrainSettings& train) {
    return std::make_unique<ProjectedSgd>(blockSets(c, spec), c.inner, train, c.pgd);
}

std::unique_ptr<Optimizer> makeRpr(const MethodConfig& c, const std::string& spec,
                                   const TrainSettings& train) {
    return std::make_unique<Rpr>(blockSets(c, spec), c.rpr, c.inner, train);
}

std::unique_ptr<Optimizer> makeInc(const MethodConfig& c, const std::string&,
                                   const TrainSettings& train) {
    requireOnlyFloatEntries(c);
    return std::make_unique<Incremental>(ttqFactory(c.ttqThreshold, c.granularity), c.granularity,
                                         c.inc, c.inner, train);
}


}  // namespace

const std::vector<MethodInfo>& methods() {
    static const std::vector<MethodInfo> all{
        {"fp", {"sgd", "float"}, "float baseline: SGD/Adam on every weight", "", makeFp},
        {"bc", {"binaryconnect"}, "BinaryConnect: STE through sign, latent clipped to [-1, 1]",
         "binary", makeBc},
        {"bwn", {}, "binary weight networks: STE through a*sign", "binary:scaled", makeSteMethod},
        {"twn", {}, "ternary weight networks: STE through TWN's threshold rule", "ternary:twn",
         makeSteMethod},
        {"ttq", {}, "trained ternary quantization: trained scales Wp, Wn", "", makeTtq},
        {"gtc", {}, "generalized ternary connect: sign(w) 2^round(theta1 + theta2 log2|w|), "
                    "theta trained per layer, bit penalty",
         "", makeGtc},
        {"admm", {}, "ADMM: W-step (extragradient), G = P_C(W + U), U += W - G",
         "ternary:exact", makeAdmm},
        {"pgd", {"projected-sgd"}, "projected SGD: W = P_C(W - lr*inner(g))", "ternary:exact",
         makePgd},
        {"rpr", {}, "random partition relaxation: a rising random share frozen at P_C(W)",
         "ternary:exact", makeRpr},
        {"inc", {"incremental"}, "incremental TTQ: the largest |W| ternarized in stages", "",
         makeInc},
    };
    return all;
}

std::vector<std::string> methodNames() {
    std::vector<std::string> names;
    for (const MethodInfo& m : methods()) names.push_back(m.name);
    return names;
}

const MethodInfo& findMethod(const std::string& nameOrAlias) {
    for (const MethodInfo& m : methods())
        if (m.name == nameOrAlias ||
            std::find(m.aliases.begin(), m.aliases.end(), nameOrAlias) != m.aliases.end())
            return m;
    fail("findMethod()", "unknown method '" + nameOrAlias + "'; known: " + joined(methodNames()));
}

std::string resolvedProjection(const MethodConfig& c) {
    const MethodInfo& m = findMethod(c.method);
    if (m.defaultProjection.empty()) return "";
    if (c.projection.empty()) return m.defaultProjection;
    const ProjectionSpec parsed = parseProjectionSpec(c.projection);
    if (!parsed.perLayer()) return c.projection;  // a plain spec, as it always was
    if (!parsed.defaultSpec.empty()) return parsed.str();
    // per-layer entries only: the layers not named keep the method's default
    ProjectionSpec withDefault = parsed;
    withDefault.defaultSpec = m.defaultProjection;
    return withDefault.str();
}

void MethodConfig::validate() const {
    // The optimizer's constructor validates the settings struct it takes (and builds the
    // projection or quantizer, which check their own spec and threshold): one set of ranges.
    const MethodInfo& m = findMethod(method);
    m.make(*this, resolvedProjection(*this), TrainSettings{});
}

BlockSets makeBlockSets(const MethodConfig& config) {
    const std::string spec = resolvedProjection(config);
    if (spec.empty())
        fail("makeBlockSets()", "method " + findMethod(config.method).name + " has no projection");
    return blockSets(config, spec);
}

std::unique_ptr<Optimizer> makeOptimizer(const MethodConfig& config, const TrainSettings& train) {
    return findMethod(config.method).make(config, resolvedProjection(config), train);
}

}  // namespace tern::optim
