// Optimizers by name (larq-style lookup: unknown names fail with the list of valid ones).
#include "tern/optim/factory.hpp"

#include "tern/core/error.hpp"
#include "tern/proj/quantizer.hpp"

#include <algorithm>

namespace tern::optim {

std::vector<std::string> optimizerNames() {
    return {"admm", "binaryconnect", "bwn", "pgd", "sgd", "ste", "ttq", "twn"};
}

namespace {
std::string joined(const std::vector<std::string>& names) {
    std::string s;
    for (const std::string& n : names) s += (s.empty() ? "" : ", ") + n;
    return s;
}

std::unique_ptr<Optimizer> build(const std::string& method,
                                 std::shared_ptr<const proj::Projection> projection,
                                 const MethodSettings& s) {
    if (method == "sgd") return std::make_unique<Sgd>(s.inner, s.train);
    if (method == "pgd")
        return std::make_unique<ProjectedSgd>(std::move(projection), s.granularity, s.inner,
                                              s.train);
    if (method == "admm")
        return std::make_unique<Admm>(std::move(projection), s.granularity, s.admm, s.inner,
                                      s.train);
    // STE family: BinaryConnect = binary + latent clip 1, BWN = binary:scaled, TWN = ternary:twn
    SteSettings ste = s.ste;
    std::string quantizer = s.quantizer;
    if (method == "binaryconnect") {
        projection = proj::makeProjection("binary");
        if (ste.latentClip == 0) ste.latentClip = 1;
        quantizer = "ste";
    } else if (method == "bwn") {
        projection = proj::makeProjection("binary:scaled");
        quantizer = "ste";
    } else if (method == "twn") {
        projection = proj::makeProjection("ternary:twn");
        quantizer = "ste";
    } else if (method == "ttq") {
        quantizer = "ttq";
    } else if (method != "ste") {
        fail("makeOptimizer()",
             "unknown method '" + method + "'; known: " + joined(optimizerNames()));
    }
    QuantizerFactory factory;
    const Granularity g = s.granularity;
    if (quantizer == "ste") {
        if (!projection) fail("makeOptimizer()", "projection must not be null");
        factory = [projection, g] { return proj::makeSte(projection, g); };
    } else if (quantizer == "ttq") {
        const auto t = static_cast<Scalar>(s.ttqThreshold);
        factory = [t, g] { return proj::makeTtq(t, g); };
    } else {
        fail("makeOptimizer()", "unknown quantizer '" + quantizer + "'; known: ste, ttq");
    }
    return std::make_unique<Ste>(std::move(factory), ste, s.inner, s.train);
}
}  // namespace

std::unique_ptr<Optimizer> makeOptimizer(const std::string& method,
                                         std::shared_ptr<const proj::Projection> projection,
                                         const MethodSettings& settings) {
    const std::vector<std::string> names = optimizerNames();
    if (std::find(names.begin(), names.end(), method) == names.end())
        fail("makeOptimizer()", "unknown method '" + method + "'; known: " + joined(names));
    return build(method, std::move(projection), settings);
}

std::unique_ptr<Optimizer> makeOptimizer(const std::string& method,
                                         const MethodSettings& settings) {
    const std::vector<std::string> names = optimizerNames();
    if (std::find(names.begin(), names.end(), method) == names.end())
        fail("makeOptimizer()", "unknown method '" + method + "'; known: " + joined(names));
    std::shared_ptr<const proj::Projection> projection;
    if (method == "pgd" || method == "admm" || (method == "ste" && settings.quantizer == "ste"))
        projection = proj::makeProjection(settings.projection);
    return build(method, std::move(projection), settings);
}

}  // namespace tern::optim
