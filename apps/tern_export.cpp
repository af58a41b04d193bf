// tern-export: turn a tern-train checkpoint into a deployable model file (BN folded, 2-bit
// ternary or sign + exponent power-of-two codes, per-channel scale and shift; docs/export.md).
#include "common/app.hpp"
#include "tern/core/format.hpp"
#include "tern/deploy/codes.hpp"
#include "tern/deploy/model.hpp"

#include <filesystem>
#include <algorithm>
#include <iomanip>
#include <iostream>
#include <sstream>

namespace po = boost::program_options;
namespace app = tern::app;
using tern::Index;
using namespace tern::deploy;

namespace {

std::vector<Index> parseInput(const std::string& s) {
    std::vector<Index> out;
    std::stringstream ss(s);
    for (std::string item; std::getline(ss, item, ',');) {
        const std::optional<long long> v = tern::parseWholeInteger(item);
        if (!v || *v < 1)
            throw std::invalid_argument("--input: '" + s + "' is not C,H,W (positive integers)");
        out.push_back(static_cast<Index>(*v));
    }
    if (out.size() != 3) throw std::invalid_argument("--input: '" + s + "' is not C,H,W");
    return out;
}

std::string bytes(double b) {
    std::ostringstream o;
    o << std::fixed << std::setprecision(1);
    if (b >= 1 << 20) o << b / (1 << 20) << " MiB";
    else if (b >= 1 << 10) o << b / (1 << 10) << " KiB";
    else o << std::setprecision(0) << b << " B";
    return o.str();
}

int run(int argc, char** argv) {
    std::string checkpoint, out, input;
    ExportOptions opt;
    bool noPropagate = false;
    po::options_description desc(
        "tern-export: fold BN into a trained ternary or power-of-two network and write a model file\n"
        "Usage: tern-export --checkpoint DIR/checkpoint.h5 --out model.h5\nOptions");
    desc.add_options()
        ("help,h", "this help")
        ("checkpoint", po::value(&checkpoint), "tern-train checkpoint (DIR/checkpoint.h5)")
        ("out", po::value(&out), "model file to write (HDF5, format tern-model)")
        ("data-dir", po::value(&opt.dataDir), "training data (image size, normalization); default: the checkpoint's")
        ("input", po::value(&input), "image size C,H,W when the data is not at hand (default: the dataset's)")
        ("int8-codes", po::bool_switch(&opt.int8Codes), "also store the codes as int8 (8 bits per weight)")
        ("no-propagate", po::bool_switch(&noPropagate), "keep every layer's scale (no propagation of per-tensor scales and 1/std to the logits)")
        ("tolerance", app::withDefault(&opt.tolerance), "relative tolerance of the ternary and power-of-two checks");
    const bool help = app::asUsage([&] {
        po::variables_map vm;
        po::store(po::parse_command_line(argc, argv, desc), vm);
        po::notify(vm);
        if (vm.count("help")) return true;
        if (checkpoint.empty()) throw std::invalid_argument("--checkpoint is required");
        if (out.empty()) throw std::invalid_argument("--out is required");
        if (!input.empty()) opt.input = parseInput(input);
        opt.propagateScales = !noPropagate;
        return false;
    });
    if (help) {
        std::cout << desc << '\n';
        return app::kExitOk;
    }
    const TernaryModel m = TernaryModel::fromCheckpoint(checkpoint, opt);
    m.save(out, opt.int8Codes);
    std::cout << "tern-export: " << checkpoint << " -> " << out << " (model "
              << m.infoValue("model") << ", method " << m.infoValue("method") << ", alpha "
              << m.infoValue("alpha") << ", bn " << m.infoValue("bn") << ", input "
              << m.input()[0] << "x" << m.input()[1] << "x" << m.input()[2] << ")\n";
    if (m.mean().empty())
        std::cout << "  note: training data not found; no input normalization stored\n";
    int nameWidth = 10;  // ResNets' layer names ("s3b2.conv2") are longer than LeNet's
    for (const DeployedLayer& l : m.layers())
        nameWidth = std::max(nameWidth, static_cast<int>(l.name.size()) + 2);
    std::cout << std::left << std::setw(nameWidth) << "layer" << std::setw(9) << "type"
              << std::setw(16) << "weights" << std::setw(12) << "storage" << std::setw(10)
              << "nonzeros" << std::setw(10) << "sparsity" << std::setw(8) << "groups"
              << std::setw(30) << "s_c min / mean / max" << "multiplication-free\n";
    // " (reads a b)" for a layer that reads more than one layer, or another than the one before
    const auto reads = [&m](const DeployedLayer& l) {
        const int self = static_cast<int>(&l - &m.layers().front());
        if (l.inputs.size() < 2 && (l.inputs.empty() || self == 0 || l.inputs[0] == self - 1))
            return std::string();
        std::string r = " (reads";
        for (int j : l.inputs)
            r += ' ' + (j < 0 ? std::string("input") : m.layers()[static_cast<size_t>(j)].name);
        return r + ')';
    };
    for (const DeployedLayer& l : m.layers()) {
        if (l.kind != DeployedKind::Conv && l.kind != DeployedKind::Fc) {
            std::cout << std::setw(nameWidth) << l.name << kindName(l.kind) << reads(l) << '\n';
            continue;
        }
        const Index n = l.weightShape.size();
        std::ostringstream s;
        s << std::setprecision(4) << l.scale.minCoeff() << " / " << l.scale.mean() << " / "
          << l.scale.maxCoeff();
        const std::string storage = l.ternary()      ? "2-bit"
                                    : l.powerOfTwo() ? std::to_string(l.codeBits()) + "-bit 2^e"
                                                     : "float32";
        const std::string free = !l.quantized() ? "no (float layer)"
                                 : l.multiplicationFree
                                     ? (l.powerOfTwo() ? "yes (shifts)" : "yes")
                                     : (l.scaled() ? "no (s_c != 1)" : "no (r_g not 2^k)");
        std::cout << std::setw(nameWidth) << l.name << std::setw(9) << kindName(l.kind) << std::setw(16)
                  << l.weightShape.str() << std::setw(12) << storage
                  << std::setw(10) << l.nonzeros() << std::setw(10) << std::fixed
                  << std::setprecision(3) << 1.0 - double(l.nonzeros()) / double(n)
                  << std::defaultfloat << std::setw(8) << (l.quantized() ? std::to_string(l.groups) : "-")
                  << std::setw(30) << s.str() << free
                  << (l.powerOfTwo() ? ", exponents " + std::to_string(l.exponentMin) + ".." +
                                           std::to_string(l.exponentMax) + " (GTC bits " +
                                           std::to_string(gtcBits(l.exponentMin, l.exponentMax)) + ")"
                                     : "")
                  << (l.foldedBatchNorm ? ", BN folded" : "") << reads(l) << '\n';
    }
    const DeployedCost c = m.cost();
    const double fileBytes = static_cast<double>(std::filesystem::file_size(out));
    std::cout << std::setprecision(4) << "model file " << bytes(fileBytes) << " vs float32 "
              << bytes(c.float32Bits / 8) << " (parameters + BN statistics): "
              << c.float32Bits / 8 / fileBytes << "x smaller; payload " << bytes(c.storageBits / 8)
              << ", " << c.float32Bits / c.storageBits << "x\n";
    if (c.ternaryBits > 0)
        std::cout << "quantized layers: " << bytes(c.ternaryBits / 8) << " vs " << bytes(c.ternaryFloat32Bits / 8)
                  << " as float32: " << c.ternaryFloat32Bits / c.ternaryBits << "x less storage"
                  << (c.ternaryFloat32Bits / c.ternaryBits >= 15 ? " (>= 15x)" : " (< 15x: small layers, per-channel scales dominate)")
                  << '\n';
    std::cout << "per image: " << c.multiplications << " multiplications, " << c.shifts
              << " shifts, " << c.additions << " additions\n";
    if (m.fullyMultiplicationFree())
        std::cout << "every conv/FC layer is quantized and multiplication-free (weights 0 or "
                     "+-2^k, s_c = 1)\n";
    else if (m.multiplicationFree())
        std::cout << "multiplication-free quantized layers; the float layers still multiply\n";
    const ScaleFolding& f = m.folding();
    if (f.propagated)
        std::cout << "per-tensor scales propagated to the logits: logits = " << std::setprecision(6)
                  << f.logitScale << " x outputs (argmax ignores it); input "
                  << (f.rawInput ? (f.inputOffset.empty()
                                        ? "raw (1/std folded, mean folded into the first layer's bias)"
                                        : "raw minus the mean (1/std folded; the first layer pads, so the mean stays an addition)")
                                 : (m.mean().empty() ? "as given (no normalization stored)"
                                                     : "normalized (a per-channel std does not fold into ternary codes)"))
                  << '\n';
    return app::kExitOk;
}

}  // namespace

int main(int argc, char** argv) { return app::runApp("tern-export", argc, argv, run); }
