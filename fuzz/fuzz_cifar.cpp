// libFuzzer target: the CIFAR-10 binary-batch reader (io::readCifar10) and what runs on its
// result (channelStats, normalize, gatherBatch with the pad-crop-flip augmentation).
//
// Input layout: byte 0 flags (bit 0: read the "train" split, the rest written as each of
// data_batch_1..5.bin; else test_batch.bin; bit 1: augmentation on), then the batch file.
#include "fuzz_util.hpp"
#include "tern/io/dataset.hpp"

#include <random>
#include <vector>

using namespace tern;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 1) return 0;
    const bool train = data[0] & 1;
    const bool augment = data[0] & 2;
    if (train) {
        fuzz::removeFile("test_batch.bin");
        for (int b = 1; b <= 5; ++b)
            fuzz::writeFile("data_batch_" + std::to_string(b) + ".bin", data + 1, size - 1);
    } else {
        for (int b = 1; b <= 5; ++b) fuzz::removeFile("data_batch_" + std::to_string(b) + ".bin");
        fuzz::writeFile("test_batch.bin", data + 1, size - 1);
    }
    fuzz::clean([&] {
        io::Dataset d = io::readCifar10(fuzz::scratchDir(), train ? "train" : "test");
        std::vector<float> mean, stddev;
        io::channelStats(d, mean, stddev);
        io::normalize(d, mean, stddev);
        if (d.count == 0) return;
        d.augment = augment;
        const std::vector<Index> indices{0, d.count - 1};
        std::vector<float> batch(indices.size() * static_cast<std::size_t>(d.imageSize()));
        std::vector<std::int32_t> labels(indices.size());
        std::mt19937_64 rng(1);
        io::gatherBatch(d, indices, batch.data(), labels.data(), &rng);
    });
    return 0;
}
