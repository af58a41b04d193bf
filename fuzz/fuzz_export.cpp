// libFuzzer target: a checkpoint as tern-export and tern-eval --checkpoint read it
// (deploy::TernaryModel::fromCheckpoint: the network rebuilt from the config attributes, the
// deployed parameters and BN statistics loaded, the ternary check, the folding).
#include "fuzz_util.hpp"
#include "tern/deploy/model.hpp"

using namespace tern;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string path = fuzz::writeFile("checkpoint.h5", data, size);
    fuzz::clean([&] {
        deploy::ExportOptions options;
        options.dataDir = fuzz::scratchDir() + "/no-data";  // the image size from the file
        (void)deploy::TernaryModel::fromCheckpoint(path, options).cost();
    });
    return 0;
}
