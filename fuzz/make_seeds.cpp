// Writes the seed corpus of every fuzz target (one folder per target under OUTDIR) from files
// tern itself writes, so no binary is checked in: IDX files as the tests write them
// (tests/testing/helpers.cpp), a CIFAR-10 batch, checkpoints of two tiny training runs
// (run::train), the model files tern-export would write from them, and a tern-lsq input.
// Usage: tern-fuzz-seeds OUTDIR
#include "testing/helpers.hpp"
#include "tern/deploy/model.hpp"
#include "tern/io/hdf5_file.hpp"
#include "tern/run/train.hpp"

#include <zlib.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

using namespace tern;
namespace fs = std::filesystem;
using Bytes = std::vector<std::uint8_t>;

namespace {

Bytes readFile(const fs::path& p) {
    std::ifstream f(p, std::ios::binary);
    if (!f) throw std::runtime_error("cannot read " + p.string());
    return Bytes(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
}

void writeFile(const fs::path& p, const Bytes& b) {
    fs::create_directories(p.parent_path());
    std::ofstream f(p, std::ios::binary | std::ios::trunc);
    f.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
    if (!f) throw std::runtime_error("cannot write " + p.string());
}

/// Writes an HDF5 seed; a file with tern's integrity header (a 512-byte user block starting
/// "TERNSUM1", io/integrity.hpp) is also written without it, as "<name>-unsealed.h5": what an
/// older tern or h5py writes, which the readers hand to libhdf5 unchecked (HDF5 addresses are
/// relative to the superblock, so the rest is a valid file: h5unjam does the same).
void writeH5Seed(const fs::path& p, const Bytes& b) {
    writeFile(p, b);
    constexpr std::size_t kUserBlock = 512;
    if (b.size() > kUserBlock && std::string(b.begin(), b.begin() + 8) == "TERNSUM1") {
        fs::path unsealed = p;
        unsealed.replace_filename(p.stem().string() + "-unsealed.h5");
        writeFile(unsealed, Bytes(b.begin() + kUserBlock, b.end()));
    }
}

Bytes gzip(const Bytes& raw) {
    uLongf size = compressBound(static_cast<uLong>(raw.size())) + 64;
    Bytes out(size);
    z_stream z{};
    // windowBits 15 + 16: a gzip header and trailer, as gzip(1) writes
    if (deflateInit2(&z, 9, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        throw std::runtime_error("deflateInit2 failed");
    z.next_in = const_cast<Bytef*>(raw.data());
    z.avail_in = static_cast<uInt>(raw.size());
    z.next_out = out.data();
    z.avail_out = static_cast<uInt>(out.size());
    if (deflate(&z, Z_FINISH) != Z_STREAM_END) throw std::runtime_error("deflate failed");
    out.resize(z.total_out);
    deflateEnd(&z);
    return out;
}

/// fuzz_idx's layout: flags, image-file length (LE u32), limit, image file, label file.
Bytes idxInput(std::uint8_t flags, std::uint8_t limit, const Bytes& image, const Bytes& label) {
    Bytes b{flags};
    const auto n = static_cast<std::uint32_t>(image.size());
    for (int i = 0; i < 4; ++i) b.push_back(static_cast<std::uint8_t>(n >> (8 * i)));
    b.push_back(limit);
    b.insert(b.end(), image.begin(), image.end());
    b.insert(b.end(), label.begin(), label.end());
    return b;
}

/// A tiny run on the bands data: returns the checkpoint's path.
std::string trainTiny(const std::string& dataDir, const fs::path& out, const std::string& method,
                      bool bn) {
    run::TrainConfig c;
    c.dataset = "mnist";
    c.dataDir = dataDir;
    c.model = "tiny";
    c.width = 0.5;
    c.batchNorm = bn;
    c.epochs = 1;
    c.batchSize = 10;
    c.lr = 0.05;
    c.threads = 1;
    c.method = method;
    c.evalBatch = 20;
    c.outDir = out.string();
    const run::TrainResult r = run::train(c, nullptr);
    if (r.status != "completed") throw std::runtime_error("tiny run " + method + ": " + r.status);
    return (out / "checkpoint.h5").string();
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 2) {
        std::cerr << "usage: tern-fuzz-seeds OUTDIR\n";
        return 1;
    }
    try {
        const fs::path out = argv[1];
        const fs::path work = out / "work";
        fs::remove_all(work);
        fs::create_directories(work / "bands");

        // IDX: the tests' "bands" images (8 of 6x6 for the corpus, 30 of 12x12 to train on).
        const std::string small = (work / "bands").string();
        testing::writeBandsIdx(small, "train", 8, 6, 1);
        const Bytes img = readFile(work / "bands/train-images-idx3-ubyte");
        const Bytes lab = readFile(work / "bands/train-labels-idx1-ubyte");
        writeFile(out / "fuzz_idx/raw-train", idxInput(0, 0, img, lab));
        writeFile(out / "fuzz_idx/raw-test-augment", idxInput(4 | 16, 0, img, lab));
        writeFile(out / "fuzz_idx/raw-both-limit3", idxInput(8, 3, img, lab));
        writeFile(out / "fuzz_idx/gz-train", idxInput(1 | 2, 0, gzip(img), gzip(lab)));
        writeFile(out / "fuzz_idx/gz-images-both", idxInput(1 | 8, 5, gzip(img), lab));

        // CIFAR-10: three records (label byte + 3 x 32 x 32 pixels) of smooth random images.
        Bytes cifar;
        std::mt19937_64 rng(3);
        for (int r = 0; r < 3; ++r) {
            cifar.push_back(static_cast<std::uint8_t>(rng() % 10));
            for (int i = 0; i < 3 * 32 * 32; ++i)
                cifar.push_back(static_cast<std::uint8_t>((i * 7 + r * 40 + rng() % 16) & 0xff));
        }
        Bytes test{0}, train{1 | 2};
        test.insert(test.end(), cifar.begin(), cifar.end());
        train.insert(train.end(), cifar.begin(), cifar.end());
        writeFile(out / "fuzz_cifar/test", test);
        writeFile(out / "fuzz_cifar/train-augment", train);

        // Checkpoints of two tiny runs (TWN with BN, ADMM without), and their model files.
        const std::string data = (work / "data").string();
        fs::create_directories(data);
        testing::writeBandsIdx(data, "train", 30, 12, 1);
        testing::writeBandsIdx(data, "t10k", 20, 12, 2);
        struct Run {
            const char* method;
            bool bn;
        };
        for (const Run& r : {Run{"twn", true}, Run{"admm", false}}) {
            const std::string tag = std::string(r.method) + (r.bn ? "-bn" : "");
            const std::string ckpt = trainTiny(data, work / ("run-" + tag), r.method, r.bn);
            writeH5Seed(out / "fuzz_checkpoint" / (tag + ".h5"), readFile(ckpt));
            writeH5Seed(out / "fuzz_export" / (tag + ".h5"), readFile(ckpt));
            const deploy::TernaryModel m = deploy::TernaryModel::fromCheckpoint(ckpt);
            const fs::path model = work / (tag + "-model.h5");
            m.save(model.string(), /*int8Codes=*/r.bn);
            writeH5Seed(out / "fuzz_model" / (tag + ".h5"), readFile(model));
            // Each reader also gets the other kind of file: a clean refusal is what it must give.
            writeFile(out / "fuzz_checkpoint" / (tag + "-model.h5"), readFile(model));
            writeFile(out / "fuzz_model" / (tag + "-checkpoint.h5"), readFile(ckpt));
        }

        // tern-lsq input: A (6 x 3) and b (6), float32, written as tern writes HDF5 files.
        {
            const fs::path lsq = work / "lsq.h5";
            io::Hdf5Writer w(lsq.string());
            Vector a(18), b(6);
            for (Index i = 0; i < 18; ++i) a[i] = static_cast<float>((i * 5) % 7) - 3.0f;
            for (Index i = 0; i < 6; ++i) b[i] = 0.5f * static_cast<float>(i) - 1.0f;
            w.writeFloats("A", a, Shape{6, 3});
            w.writeFloats("b", b, Shape{6});
            w.attr("note", "fuzz seed");
            w.close();
            writeH5Seed(out / "fuzz_lsq/lsq.h5", readFile(lsq));
        }
        fs::remove_all(work);
    } catch (const std::exception& e) {
        std::cerr << "tern-fuzz-seeds: " << e.what() << "\n";
        return 2;
    }
    return 0;
}
