// TrainConfig: validation, the method's resolved configuration, key=value form.
#include "tern/run/config.hpp"

#include "tern/core/error.hpp"
#include "tern/core/format.hpp"
#include "tern/io/dataset.hpp"
#include "tern/nn/loss.hpp"
#include "tern/nn/models.hpp"
#include "tern/nn/network.hpp"

#include <algorithm>

namespace tern::run {

namespace {

bool oneOf(const std::string& v, const std::vector<std::string>& set) {
    return std::find(set.begin(), set.end(), v) != set.end();
}


std::string joinedNumbers(const std::vector<double>& v) {
    std::string s;
    for (size_t i = 0; i < v.size(); ++i) {
        if (i) s += ',';
        s += formatShortest(v[i]);
    }
    return s;
}

}  // namespace

TrainConfig::TrainConfig() {
    opt.inner.adam.weightDecay = opt.inner.sgd.weightDecay;  // one --weight-decay for both rules
    opt.ste.trainableLr = 1e-3;  // ttq / inc: Wp, Wn's gradient sums a whole group
}

void TrainConfig::setWeightDecay(double wd) {
    opt.inner.sgd.weightDecay = wd;
    opt.inner.adam.weightDecay = wd;
}

void TrainConfig::setOptimizer(const std::string& name) {
    if (name == "sgd") opt.inner.rule = optim::InnerSettings::Rule::Sgd;
    else if (name == "adam") opt.inner.rule = optim::InnerSettings::Rule::Adam;
    else fail("TrainConfig::setOptimizer()", "unknown optimizer '" + name + "'; known: sgd, adam");
}

std::string TrainConfig::methodName() const { return optim::findMethod(method).name; }

void TrainConfig::validate() const {
    const char* w = "TrainConfig::validate()";
    if (!oneOf(dataset, io::datasetNames()))
        fail(w, "unknown dataset '" + dataset + "'; known: " + joined(io::datasetNames()));
    if (dataset == "folder") {
        if (dataDir.empty()) fail(w, "dataset folder needs a data directory (--data-dir DIR with DIR/train/<class>/ and DIR/val/<class>/)");
        folder.validate();
    }
    if (!oneOf(model, nn::modelNames()))
        fail(w, "unknown model '" + model + "'; known: " + joined(nn::modelNames()));
    const std::string m = methodName();  // unknown names fail here, with the list
    if (!oneOf(levels, {"ternary", "binary", "pow2"}))
        fail(w, "unknown levels '" + levels + "'; known: ternary, binary, pow2");
    if (!oneOf(alpha, {"free", "one"})) fail(w, "alpha must be free or one (got '" + alpha + "')");
    if (!oneOf(lrSchedule, {"multistep", "cosine", "constant"}))
        fail(w, "unknown lr schedule '" + lrSchedule + "'; known: multistep, cosine, constant");
    parseGranularity(granularity);
    nn::parseLoss(loss);
    nn::parseWeightInit(weightInit);
    nn::parseShortcut(shortcut);
    requirePositive(width, w, "width");
    requireInRange(dropout, 0, 0.99, w, "dropout");
    requireNonNegative(static_cast<double>(epochs), w, "epochs");
    requirePositive(static_cast<double>(batchSize), w, "batch-size");
    requirePositive(lr, w, "lr");
    requirePositive(lrGamma, w, "lr-gamma");
    requireNonNegative(static_cast<double>(trainLimit), w, "train-limit");
    requireNonNegative(static_cast<double>(testLimit), w, "test-limit");
    requireNonNegative(threads, w, "threads");
    requireInRange(bits, 1, 16, w, "bits");
    requirePositive(static_cast<double>(evalBatch), w, "eval-batch");
    for (Index s : lrSteps)
        if (s <= 0) fail(w, TERN_MSG("lr-steps must be positive epochs (got " << s << ")"));
    requireNonNegative(static_cast<double>(stageEpochs), w, "stage-epochs");
    if (bnRecalibrate < -1)
        fail(w, TERN_MSG("bn-recalibrate must be -1 (auto) or >= 0 (got " << bnRecalibrate << ")"));
    if (resume && outDir.empty()) fail(w, "resume needs an output directory (--out)");
    if (distillWeight < 0 && distillWeight != -1)
        fail(w, TERN_MSG("distill-weight must be >= 0, or -1 for the default (got " << distillWeight << ")"));
    requirePositive(distillTemperature, w, "distill-temperature");
    if (!teacher.empty() && m == "gtc" && opt.gtcJointTeacher)
        fail(w, "gtc distils from its own float teacher, which shares its weights (--gtc-teacher "
                "joint); a frozen --teacher needs --gtc-teacher none");
    if (teacher.empty() && distillWeight >= 0 && !(m == "gtc" && opt.gtcJointTeacher))
        fail(w, "distill-weight needs a teacher: --teacher RUN (or gtc's --gtc-teacher joint)");
    if (m == "fp" && alpha == "one")
        fail(w, "alpha one has no meaning for the float baseline (method fp)");
    trainSettings().validate();
    methodConfig().validate();  // the optimizer's own settings, projection spec, fractions
    // per-layer entries name layers of the model (its names do not depend on the data's
    // shape or the width: a small stand-in is enough)
    const std::string spec = methodConfig().projection;
    if (optim::parseProjectionSpec(spec).perLayer()) {
        nn::ModelOptions mo;
        mo.batchNorm = batchNorm;
        mo.quantizeFirst = quantizeFirst;
        mo.quantizeLast = quantizeLast;
        const bool cifar = dataset == "cifar10" || dataset == "folder";
        const auto net = nn::makeModel(model, cifar ? std::vector<Index>{3, 32, 32} : std::vector<Index>{1, 28, 28},
                                       10, mo);
        applyLayerSets(*net, spec, w);
    }
}

void applyLayerSets(nn::Network& net, const std::string& projectionSpec, const std::string& where) {
    if (projectionSpec.empty()) return;
    const optim::ProjectionSpec parsed = optim::parseProjectionSpec(projectionSpec);
    const std::vector<ParameterBlock*> blocks = net.parameters().all();
    const std::string suffix = ".weights";
    std::vector<std::string> layers;  // the layers with weights, in order
    for (const ParameterBlock* b : blocks)
        if (b->name.size() > suffix.size() &&
            b->name.compare(b->name.size() - suffix.size(), suffix.size(), suffix) == 0)
            layers.push_back(b->name.substr(0, b->name.size() - suffix.size()));
    for (const optim::LayerSetSpec& l : parsed.layers) {
        ParameterBlock* target = nullptr;
        for (ParameterBlock* b : blocks)
            if (b->name == l.name || b->name == l.name + suffix) target = b;
        if (!target)
            fail(where, "--projection: model " + net.name() + " has no layer '" + l.name +
                            "'; its layers: " + joined(layers));
        target->constrained = !l.isFloat();
    }
}

bool hasFixedScaleSet(const std::string& projectionSpec) {
    if (projectionSpec.empty()) return false;
    const optim::ProjectionSpec parsed = optim::parseProjectionSpec(projectionSpec);
    if (!parsed.defaultSpec.empty() && !proj::makeProjection(parsed.defaultSpec)->freeScale())
        return true;
    for (const optim::LayerSetSpec& l : parsed.layers)
        if (!l.isFloat() && !proj::makeProjection(l.spec)->freeScale()) return true;
    return false;
}

std::string TrainConfig::projectionSpec() const {
    const std::string m = methodName();
    const optim::ProjectionSpec parsed = optim::parseProjectionSpec(projection);
    // fp, ttq, gtc, inc: only "layer=float" entries mean something (MethodConfig::validate()
    // refuses set entries); a plain spec is ignored
    if (optim::findMethod(m).defaultProjection.empty()) return parsed.perLayer() ? projection : "";
    if (!projection.empty() && !(parsed.perLayer() && parsed.defaultSpec.empty())) return projection;
    // per-layer entries alone: the default set from --levels/--alpha/--exact in front
    if (parsed.perLayer()) {
        optim::ProjectionSpec withDefault = parsed;
        TrainConfig plain = *this;
        plain.projection.clear();
        withDefault.defaultSpec = plain.projectionSpec();
        return withDefault.str();
    }
    const std::string one = alpha == "one" ? ",scale=one" : "";
    if (m == "bc") return "binary";
    if (m == "bwn") return alpha == "one" ? "binary" : "binary:scaled";
    if (m == "twn") return (exact ? "ternary:exact" : "ternary:twn") + one;
    if (levels == "binary") return alpha == "one" ? "binary" : "binary:scaled";
    if (levels == "pow2") return "pow2,bits=" + std::to_string(bits) + ",solver=exact" + one;
    return "ternary:exact" + one;
}

optim::MethodConfig TrainConfig::methodConfig() const {
    optim::MethodConfig c = opt;
    c.method = methodName();
    c.projection = projectionSpec();
    c.granularity = parseGranularity(granularity);
    // A fixed-scale set (alpha = 1) sees the initial weights at its own scale: else small
    // weights all project to 0 (ADMM, PGD); RPR rescales only in front of BN, which undoes it.
    const bool fixedScale = !optim::findMethod(c.method).defaultProjection.empty() &&
                            hasFixedScaleSet(c.projection);
    c.admm.rescale = fixedScale;
    c.pgd.rescale = fixedScale;
    c.rpr.rescale = fixedScale && batchNorm;
    c.inc.trainableLr = c.ste.trainableLr;  // --ttq-scale-lr: TTQ's scales in ttq and inc
    // gtc's joint teacher: --distill-weight is lambda1 (-1: the paper's 0.8)
    if (distillWeight >= 0) c.gtcDistillWeight = distillWeight;
    c.gtcDistillTemperature = distillTemperature;
    // rpr / inc: --fractions replaces the method's default; --stage-epochs 0 spreads the
    // stages over the run
    auto schedule = [&](std::vector<double>& f, Index& stage) {
        if (!fractions.empty()) f = fractions;
        const auto stages = static_cast<Index>(f.size());
        stage = stageEpochs > 0 ? stageEpochs : std::max<Index>(1, epochs / (stages + 1));
    };
    schedule(c.rpr.fractions, c.rpr.stageEpochs);
    schedule(c.inc.fractions, c.inc.stageEpochs);
    return c;
}

optim::TrainSettings TrainConfig::trainSettings() const {
    optim::TrainSettings t;
    t.maxEpochs = epochs;
    t.seed = seed;
    t.shuffle = true;
    if (lrSchedule == "cosine") t.lr = optim::LrSchedule::cosine(lr, std::max<Index>(epochs, 1));
    else if (lrSchedule == "constant") t.lr = optim::LrSchedule::constant(lr);
    else t.lr = optim::LrSchedule::multiStep(lr, lrSteps, lrGamma);
    return t;
}

std::vector<std::pair<std::string, std::string>> TrainConfig::items() const {
    auto b = [](bool v) { return std::string(v ? "true" : "false"); };
    std::string steps;
    for (Index s : lrSteps) {
        if (!steps.empty()) steps += ',';
        steps += std::to_string(s);
    }
    auto n = [](auto v) { return formatShortest(v); };  // the shortest text that reads back
    const optim::InnerSettings& in = opt.inner;
    const double wd = in.rule == optim::InnerSettings::Rule::Adam ? in.adam.weightDecay
                                                                  : in.sgd.weightDecay;
    std::vector<std::pair<std::string, std::string>> data{
        {"dataset", dataset}, {"data-dir", dataDir},
        {"train-limit", std::to_string(trainLimit)}, {"test-limit", std::to_string(testLimit)}};
    for (const auto& kv : folder.items()) data.push_back(kv);  // image folders (else unused)
    data.emplace_back("loader-threads", std::to_string(folder.threads));
    std::vector<std::pair<std::string, std::string>> rest{
            {"model", model},              {"width", n(width)},
            {"bn", b(batchNorm)},          {"dropout", n(dropout)},
            {"loss", loss},                {"weight-init", weightInit},
            {"shortcut", shortcut},
            {"quantize-first", b(quantizeFirst)},
            {"quantize-last", b(quantizeLast)}, {"epochs", std::to_string(epochs)},
            {"batch-size", std::to_string(batchSize)}, {"lr", n(lr)},
            {"lr-steps", steps},           {"lr-gamma", n(lrGamma)},
            {"lr-schedule", lrSchedule},   {"optimizer", in.name()},
            {"momentum", n(in.sgd.momentum)}, {"weight-decay", n(wd)},
            {"seed", std::to_string(seed)}, {"threads", std::to_string(threads)},
            {"method", methodName()},      {"levels", levels},
            {"bits", std::to_string(bits)}, {"alpha", alpha},
            {"exact", b(exact)},           {"projection", projectionSpec()},
            {"granularity", granularity},  {"ttq-threshold", n(opt.ttqThreshold)},
            {"ttq-scale-lr", n(opt.ste.trainableLr)},
            {"gtc-eps", n(opt.gtc.eps)},   {"gtc-theta-lr", n(opt.gtcThetaLr)},
            {"bit-penalty", n(opt.ste.bitPenalty)},
            {"bit-penalty-every", std::to_string(opt.ste.bitPenaltyEvery)},
            {"bit-penalty-decay", n(opt.ste.bitPenaltyDecay)},
            {"gtc-teacher", opt.gtcJointTeacher ? "joint" : "none"},
            {"teacher", teacher},
            {"distill-weight", n(distillWeight)},
            {"distill-temperature", n(distillTemperature)},
            {"rho", n(opt.admm.rho)},      {"rho-growth", n(opt.admm.rhoGrowth)},
            {"rho-max", n(opt.admm.rhoMax)}, {"outer-every", std::to_string(opt.admm.outerEvery)},
            {"extragradient", b(opt.admm.extragradient)},
            {"loss-at", lossAtName(opt.admm.lossAt)},
            {"dual-step", n(opt.admm.dualStep)},
            {"dual-lr", opt.admm.dualFollowsLr ? "current" : "initial"},
            {"outer-steps", std::to_string(opt.admm.outerEverySteps)},
            {"rho-schedule", rhoScheduleName(opt.admm.rhoSchedule)},
            {"coupling", n(opt.admm.coupling)}, {"coupling-growth", n(opt.admm.couplingGrowth)},
            {"coupling-max", n(opt.admm.couplingMax)},
            {"coupling-lr", opt.admm.couplingFollowsLr ? "current" : "initial"},
            {"decay-constrained", b(opt.admm.decayConstrained)},
            {"final-epochs", std::to_string(opt.admm.finalEpochs)},
            {"fractions", joinedNumbers(fractions)},
            {"stage-epochs", std::to_string(stageEpochs)}, {"init", init},
            {"bn-recalibrate", std::to_string(bnRecalibrate)}};
    data.insert(data.end(), rest.begin(), rest.end());
    return data;
}

}  // namespace tern::run
