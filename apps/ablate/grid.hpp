#pragma once
/// \file tern-ablate's grid: tern-train flags as words grouped into flags, layered (shared
/// options, --train-args, the variant's own), and the variants: the default grid (the handout
/// study), a grid file, the --k-sweep variants and the --variants subset. A `--method` is
/// resolved through the method registry (optim::findMethod) when the grid is read.
#include <map>
#include <string>
#include <vector>

namespace tern::ablate {

/// One tern-train option and its values: {"--lr", {"0.05"}}, {"--no-bn", {}}.
struct Flag {
    std::string name;
    std::vector<std::string> values;
};

/// Groups words into flags: a word starting with "--" opens a flag, the words after it are its
/// values; "--lr=0.05" is split at '='.
std::vector<Flag> parseFlags(const std::vector<std::string>& words, const std::string& where);

/// The flags as words again: {"--lr", {"0.05"}}, {"--no-bn", {}} -> "--lr", "0.05", "--no-bn".
std::vector<std::string> flagWords(const std::vector<Flag>& flags);

/// Flags of `over` replace those of the same name in `base`, others are appended. tern-train
/// rejects a flag given twice, so the layers (tern-ablate's options, --train-args, the
/// variant) are merged rather than concatenated.
void overlay(std::vector<Flag>& base, const std::vector<Flag>& over);

/// Throws if `flags` sets one of `reserved` (flag -> what to do instead).
void rejectFlags(const std::vector<Flag>& flags, const std::map<std::string, std::string>& reserved,
                 const std::string& where);

/// Resolves the value of a `--method` in `flags` through optim::findMethod() and replaces it by
/// the method's canonical name (an alias such as "binaryconnect" becomes "bc"); returns whether
/// it replaced one. Throws std::invalid_argument "WHERE: <findMethod()'s message>" for an
/// unknown method, and "WHERE: --method takes one method name" without exactly one value.
bool resolveMethod(std::vector<Flag>& flags, const std::string& where);

/// Flags tern-ablate sets per run.
extern const std::map<std::string, std::string> kPerRun;
/// tern-ablate's own options, not to be repeated in --train-args.
extern const std::map<std::string, std::string> kShared;

struct Variant {
    std::string name;
    /// The tern-train flags as given (for the legend of results.md and --help), with a method
    /// alias replaced by its canonical name.
    std::string text;
    std::vector<Flag> flags;
};

/// The handout study: float baseline, the STE family, ADMM with a free or unit scale, with and
/// without batch norm (alpha = 1 without BN is the multiplication-free network), PGD and RPR.
/// Without batch norm LeNet-5 diverges at the usual lr 0.05, so the no-BN variants (and their
/// float reference fp-nobn) use lr 0.01; a variant's flag wins over --train-args.
std::vector<Variant> defaultGrid();

/// Grid file: one `name: tern-train flags...` per line; '#' starts a comment.
std::vector<Variant> readGridFile(const std::string& path);

/// `topk-<k>`: ADMM onto ternary sets with a fraction k of nonzeros (the sparsity sweep).
std::vector<Variant> kSweep(const std::string& list);

/// The grid with only the variants named in `names`, in the order given.
std::vector<Variant> selectVariants(const std::vector<Variant>& grid, const std::string& names);

}  // namespace tern::ablate
