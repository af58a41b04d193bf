// libFuzzer target: the MNIST / Fashion-MNIST IDX reader (io::readIdx, io::loadDataset), raw
// and gzipped, and what runs on its result (channelStats, normalize, gatherBatch).
//
// Input layout (fuzz/make_seeds.cpp writes seeds in it):
//   byte 0      flags: bit 0 the image file is written as *.gz (the bytes as given, so the
//               fuzzer mutates the compressed stream), bit 1 the same for the label file,
//               bit 2 read the "test" split (t10k-*) instead of "train", bit 3 also go through
//               loadDataset() (the same files for both splits) with limits from byte 5,
//               bit 4 augmentation on in gatherBatch
//   bytes 1..4  n, little-endian: the image file's length (clamped to what is left)
//   byte 5      train/test limit for loadDataset (0 = all)
//   then        n bytes of the image file, the rest is the label file
#include "fuzz_util.hpp"
#include "tern/io/dataset.hpp"

#include <algorithm>
#include <random>
#include <vector>

using namespace tern;

namespace {

const char* const kNames[] = {"train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                              "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"};

void clear() {
    for (const char* n : kNames) {
        fuzz::removeFile(n);
        fuzz::removeFile(std::string(n) + ".gz");
    }
}

/// What the apps do with a dataset once read: statistics, normalization, a batch.
void use(io::Dataset& d, bool augment) {
    std::vector<float> mean, stddev;
    io::channelStats(d, mean, stddev);
    io::normalize(d, mean, stddev);
    if (d.count == 0) return;
    d.augment = augment;
    const std::vector<Index> indices{0, d.count - 1, d.count / 2};
    std::vector<float> batch(indices.size() * static_cast<std::size_t>(d.imageSize()));
    std::vector<std::int32_t> labels(indices.size());
    std::mt19937_64 rng(1);
    io::gatherBatch(d, indices, batch.data(), labels.data(), &rng);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 6) return 0;
    const std::uint8_t flags = data[0];
    const std::size_t left = size - 6;
    const std::size_t n = std::min<std::size_t>(fuzz::le32(data + 1), left);
    const auto limit = static_cast<Index>(data[5]);
    const std::uint8_t* image = data + 6;
    const std::uint8_t* label = image + n;
    const std::size_t labelSize = left - n;
    const bool test = flags & 4;

    clear();
    const auto write = [&](const std::string& prefix) {
        fuzz::writeFile(prefix + "-images-idx3-ubyte" + (flags & 1 ? ".gz" : ""), image, n);
        fuzz::writeFile(prefix + "-labels-idx1-ubyte" + (flags & 2 ? ".gz" : ""), label, labelSize);
    };
    write(test ? "t10k" : "train");
    fuzz::clean([&] {
        io::Dataset d = io::readIdx(fuzz::scratchDir(), test ? "test" : "train", "mnist");
        use(d, flags & 16);
    });
    if (flags & 8) {
        write(test ? "train" : "t10k");
        fuzz::clean([&] {
            io::DataSplit s = io::loadDataset("mnist", fuzz::scratchDir(), limit, limit);
            use(s.train, flags & 16);
        });
    }
    return 0;
}
