#define BOOST_TEST_MODULE datasets
#include <boost/test/unit_test.hpp>

#include "testing/helpers.hpp"
#include "tern/io/dataset.hpp"

#include <zlib.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <string>
#include <tuple>
#include <vector>

using namespace tern;
using tern::testing::messageContains;
namespace fs = std::filesystem;

namespace {

using Bytes = std::vector<std::uint8_t>;

void putBe32(Bytes& b, std::uint32_t v) {
    for (int s = 24; s >= 0; s -= 8) b.push_back(static_cast<std::uint8_t>(v >> s));
}

/// Writes `bytes` to `path`, gzipped (zlib) when `gz`.
void writeFile(const std::string& path, const Bytes& bytes, bool gz = false) {
    if (gz) {
        gzFile f = gzopen(path.c_str(), "wb");
        BOOST_REQUIRE(f != nullptr);
        BOOST_REQUIRE_EQUAL(gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size())),
                            static_cast<int>(bytes.size()));
        BOOST_REQUIRE_EQUAL(gzclose(f), Z_OK);
    } else {
        std::ofstream out(path, std::ios::binary);
        out.write(reinterpret_cast<const char*>(bytes.data()),
                  static_cast<std::streamsize>(bytes.size()));
        BOOST_REQUIRE(out.good());
    }
}

/// Pixel (i, y, x) of the synthetic IDX images.
std::uint8_t idxPixel(std::uint32_t i, std::uint32_t y, std::uint32_t x) {
    return static_cast<std::uint8_t>((i * 37 + y * 11 + x * 3) % 256);
}

/// An IDX image file: magic 2051, count, rows, cols (big-endian), then the pixels.
Bytes idxImages(std::uint32_t count, std::uint32_t rows, std::uint32_t cols,
                std::uint32_t magic = 2051) {
    Bytes b;
    putBe32(b, magic);
    putBe32(b, count);
    putBe32(b, rows);
    putBe32(b, cols);
    for (std::uint32_t i = 0; i < count; ++i)
        for (std::uint32_t y = 0; y < rows; ++y)
            for (std::uint32_t x = 0; x < cols; ++x) b.push_back(idxPixel(i, y, x));
    return b;
}

std::uint8_t idxLabel(std::uint32_t i) { return static_cast<std::uint8_t>((i * 7 + 3) % 10); }

/// An IDX label file: magic 2049, count, then one byte per label.
Bytes idxLabels(std::uint32_t count, std::uint32_t magic = 2049) {
    Bytes b;
    putBe32(b, magic);
    putBe32(b, count);
    for (std::uint32_t i = 0; i < count; ++i) b.push_back(idxLabel(i));
    return b;
}

/// Writes a complete MNIST-like directory: `train` and `test` images of rows x cols.
std::string makeIdxDir(const std::string& tag, std::uint32_t train, std::uint32_t test,
                       std::uint32_t rows, std::uint32_t cols, bool gz) {
    const std::string dir = testing::tempDir(tag);
    const std::string ext = gz ? ".gz" : "";
    writeFile(dir + "/train-images-idx3-ubyte" + ext, idxImages(train, rows, cols), gz);
    writeFile(dir + "/train-labels-idx1-ubyte" + ext, idxLabels(train), gz);
    writeFile(dir + "/t10k-images-idx3-ubyte" + ext, idxImages(test, rows, cols), gz);
    writeFile(dir + "/t10k-labels-idx1-ubyte" + ext, idxLabels(test), gz);
    return dir;
}

/// CIFAR-10 pixel (global image g, channel c, y, x): channel-dependent so plane order shows.
std::uint8_t cifarPixel(std::uint32_t g, std::uint32_t c, std::uint32_t y, std::uint32_t x) {
    return static_cast<std::uint8_t>((g * 13 + c * 85 + y * 5 + x) % 256);
}

/// A CIFAR-10 batch: per record 1 label byte, then the R, G, B planes of 32x32.
Bytes cifarBatch(std::uint32_t first, std::uint32_t records) {
    Bytes b;
    for (std::uint32_t r = 0; r < records; ++r) {
        const std::uint32_t g = first + r;
        b.push_back(idxLabel(g));
        for (std::uint32_t c = 0; c < 3; ++c)
            for (std::uint32_t y = 0; y < 32; ++y)
                for (std::uint32_t x = 0; x < 32; ++x) b.push_back(cifarPixel(g, c, y, x));
    }
    return b;
}

/// A CIFAR-10 directory with `perBatch` images in each of the five train batches, `test` in
/// test_batch.bin. Train image g (0-based over all batches) uses pattern g; test image i
/// uses pattern 1000 + i.
std::string makeCifarDir(const std::string& tag, std::uint32_t perBatch, std::uint32_t test) {
    const std::string dir = testing::tempDir(tag);
    for (std::uint32_t b = 0; b < 5; ++b)
        writeFile(dir + "/data_batch_" + std::to_string(b + 1) + ".bin",
                  cifarBatch(b * perBatch, perBatch));
    writeFile(dir + "/test_batch.bin", cifarBatch(1000, test));
    return dir;
}

/// Per-channel mean and (population) stddev in double, computed naively.
void naiveStats(const io::Dataset& d, std::vector<double>& mean, std::vector<double>& sd) {
    const Index plane = d.height * d.width;
    mean.assign(static_cast<std::size_t>(d.channels), 0.0);
    sd.assign(static_cast<std::size_t>(d.channels), 0.0);
    for (Index c = 0; c < d.channels; ++c) {
        double s = 0, s2 = 0;
        for (Index i = 0; i < d.count; ++i)
            for (Index k = 0; k < plane; ++k) {
                const double v = d.image(i)[c * plane + k];
                s += v;
                s2 += v * v;
            }
        const double n = double(d.count * plane);
        mean[std::size_t(c)] = s / n;
        sd[std::size_t(c)] = std::sqrt(std::max(0.0, s2 / n - (s / n) * (s / n)));
    }
}

/// Naive pad-4 / crop at offset (oy, ox) in [0, 8] / optional horizontal flip, on one image.
std::vector<float> referenceAugment(const float* img, Index C, Index H, Index W, int oy, int ox,
                                    bool flip) {
    const Index P = 4;
    std::vector<float> padded(std::size_t(C * (H + 2 * P) * (W + 2 * P)), 0.0f);
    for (Index c = 0; c < C; ++c)
        for (Index y = 0; y < H; ++y)
            for (Index x = 0; x < W; ++x)
                padded[std::size_t((c * (H + 2 * P) + y + P) * (W + 2 * P) + x + P)] =
                    img[(c * H + y) * W + x];
    std::vector<float> out(std::size_t(C * H * W));
    for (Index c = 0; c < C; ++c)
        for (Index y = 0; y < H; ++y)
            for (Index x = 0; x < W; ++x) {
                const Index xs = flip ? W - 1 - x : x;
                out[std::size_t((c * H + y) * W + x)] =
                    padded[std::size_t((c * (H + 2 * P) + y + oy) * (W + 2 * P) + xs + ox)];
            }
    return out;
}

/// A dataset whose every pixel is distinct and nonzero, so a crop/flip is identified exactly.
io::Dataset patternDataset(Index count, Index C, Index H, Index W) {
    io::Dataset d;
    d.name = "pattern/train";
    d.count = count;
    d.channels = C;
    d.height = H;
    d.width = W;
    d.images.resize(std::size_t(count * C * H * W));
    for (std::size_t k = 0; k < d.images.size(); ++k) d.images[k] = float(k + 1);
    for (Index i = 0; i < count; ++i) d.labels.push_back(std::int32_t(i % 10));
    return d;
}

struct Geometry {
    int oy, ox;
    bool flip;
    bool operator<(const Geometry& o) const {
        return std::tie(oy, ox, flip) < std::tie(o.oy, o.ox, o.flip);
    }
};

/// All (oy, ox, flip) whose reference output equals `out`.
std::vector<Geometry> matchingGeometries(const io::Dataset& d, Index i, const float* out) {
    std::vector<Geometry> found;
    for (int oy = 0; oy <= 8; ++oy)
        for (int ox = 0; ox <= 8; ++ox)
            for (bool flip : {false, true}) {
                const auto ref =
                    referenceAugment(d.image(i), d.channels, d.height, d.width, oy, ox, flip);
                if (std::equal(ref.begin(), ref.end(), out)) found.push_back({oy, ox, flip});
            }
    return found;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
BOOST_AUTO_TEST_SUITE(idx)

BOOST_AUTO_TEST_CASE(reads_raw_files) {
    const std::string dir = makeIdxDir("idx-raw", 5, 3, 4, 6, false);  // 4 rows x 6 cols
    for (const auto& [split, n] : {std::pair<std::string, std::uint32_t>{"train", 5u},
                                    std::pair<std::string, std::uint32_t>{"test", 3u}}) {
        const io::Dataset d = io::readIdx(dir, split, "mnist");
        BOOST_TEST(d.name == "mnist/" + split);
        BOOST_TEST(d.count == Index(n));
        BOOST_TEST(d.channels == 1);
        BOOST_TEST(d.height == 4);
        BOOST_TEST(d.width == 6);
        BOOST_TEST(d.numClasses == 10);
        BOOST_TEST(!d.augment);
        BOOST_REQUIRE_EQUAL(d.images.size(), std::size_t(n * 24));
        BOOST_REQUIRE_EQUAL(d.labels.size(), std::size_t(n));
        for (std::uint32_t i = 0; i < n; ++i) {
            BOOST_TEST(d.labels[i] == idxLabel(i));
            for (std::uint32_t y = 0; y < 4; ++y)
                for (std::uint32_t x = 0; x < 6; ++x)
                    BOOST_TEST(d.image(i)[y * 6 + x] == idxPixel(i, y, x) / 255.0f);
        }
    }
}

BOOST_AUTO_TEST_CASE(reads_gzipped_files) {
    const std::string raw = makeIdxDir("idx-cmp-raw", 7, 2, 28, 28, false);
    const std::string gz = makeIdxDir("idx-cmp-gz", 7, 2, 28, 28, true);
    BOOST_REQUIRE(!fs::exists(gz + "/train-images-idx3-ubyte"));
    for (const std::string split : {"train", "test"}) {
        const io::Dataset a = io::readIdx(raw, split, "fashion-mnist");
        const io::Dataset b = io::readIdx(gz, split, "fashion-mnist");
        BOOST_TEST(b.count == a.count);
        BOOST_TEST(b.height == 28);
        BOOST_TEST(b.width == 28);
        BOOST_TEST(b.images == a.images);
        BOOST_TEST(b.labels == a.labels);
    }
}

BOOST_AUTO_TEST_CASE(prefers_raw_over_gz) {
    const std::string dir = makeIdxDir("idx-both", 4, 2, 3, 3, false);
    // A gz copy with other contents must be ignored while the raw file exists.
    writeFile(dir + "/train-images-idx3-ubyte.gz", idxImages(9, 3, 3), true);
    writeFile(dir + "/train-labels-idx1-ubyte.gz", idxLabels(9), true);
    BOOST_TEST(io::readIdx(dir, "train", "mnist").count == 4);
}

BOOST_AUTO_TEST_CASE(missing_file_names_both_paths) {
    const std::string dir = makeIdxDir("idx-missing", 4, 2, 3, 3, false);
    fs::remove(dir + "/t10k-labels-idx1-ubyte");
    const std::string path = (fs::path(dir) / "t10k-labels-idx1-ubyte").string();
    BOOST_CHECK_EXCEPTION(io::readIdx(dir, "test", "mnist"), std::runtime_error,
                          messageContains("readIdx(): " + path + " missing (also tried " + path +
                                          ".gz)"));
    BOOST_CHECK_NO_THROW(io::readIdx(dir, "train", "mnist"));
}

BOOST_AUTO_TEST_CASE(missing_directory) {
    BOOST_CHECK_EXCEPTION(io::readIdx("/nonexistent-tern-dir", "train", "mnist"),
                          std::runtime_error,
                          messageContains("/nonexistent-tern-dir/train-images-idx3-ubyte missing"));
}

BOOST_AUTO_TEST_CASE(bad_magic) {
    const std::string dir = makeIdxDir("idx-magic", 4, 2, 3, 3, false);
    writeFile(dir + "/train-images-idx3-ubyte", idxImages(4, 3, 3, 1234));
    const std::string path = (fs::path(dir) / "train-images-idx3-ubyte").string();
    BOOST_CHECK_EXCEPTION(
        io::readIdx(dir, "train", "mnist"), std::runtime_error,
        messageContains("readIdx(): " + path +
                        ": bad magic number 1234 (expected 2051 for an IDX image file)"));
    // Labels and images swapped: each file's magic is wrong for its role.
    writeFile(dir + "/train-images-idx3-ubyte", idxLabels(4));
    BOOST_CHECK_EXCEPTION(io::readIdx(dir, "train", "mnist"), std::runtime_error,
                          messageContains("bad magic number 2049 (expected 2051"));
    writeFile(dir + "/train-images-idx3-ubyte", idxImages(4, 3, 3));
    writeFile(dir + "/train-labels-idx1-ubyte", idxImages(4, 3, 3));
    BOOST_CHECK_EXCEPTION(
        io::readIdx(dir, "train", "mnist"), std::runtime_error,
        messageContains("train-labels-idx1-ubyte: bad magic number 2051 (expected 2049 for an "
                        "IDX label file)"));
}

BOOST_AUTO_TEST_CASE(truncated_raw) {
    const std::string dir = makeIdxDir("idx-trunc", 4, 2, 28, 28, false);
    Bytes img = idxImages(60000, 28, 28);
    img.resize(1000);
    writeFile(dir + "/train-images-idx3-ubyte", img);
    const std::string path = (fs::path(dir) / "train-images-idx3-ubyte").string();
    BOOST_CHECK_EXCEPTION(io::readIdx(dir, "train", "mnist"), std::runtime_error,
                          messageContains(path + ": truncated: expected 47040016 bytes, got 1000"));
    // Shorter than the header itself.
    writeFile(dir + "/train-images-idx3-ubyte", Bytes{0, 0, 8});
    BOOST_CHECK_EXCEPTION(io::readIdx(dir, "train", "mnist"), std::runtime_error,
                          messageContains(path + ": truncated: expected at least 16 bytes"));
    // Truncated labels.
    writeFile(dir + "/train-images-idx3-ubyte", idxImages(4, 28, 28));
    Bytes lab = idxLabels(4);
    lab.pop_back();
    writeFile(dir + "/train-labels-idx1-ubyte", lab);
    BOOST_CHECK_EXCEPTION(
        io::readIdx(dir, "train", "mnist"), std::runtime_error,
        messageContains("train-labels-idx1-ubyte: truncated: expected 12 bytes, got 11"));
}

BOOST_AUTO_TEST_CASE(truncated_gz) {
    const std::string dir = makeIdxDir("idx-truncgz", 4, 2, 28, 28, true);
    const std::string path = (fs::path(dir) / "t10k-images-idx3-ubyte.gz").string();
    // A valid gzip stream whose content is short of what the header promises.
    Bytes img = idxImages(2, 28, 28);
    img.resize(500);
    writeFile(path, img, true);
    BOOST_CHECK_EXCEPTION(io::readIdx(dir, "test", "mnist"), std::runtime_error,
                          messageContains(path + ": truncated: expected 1584 bytes, got 500"));
    // A gzip stream cut in the middle (a partial download).
    writeFile(path, idxImages(2, 28, 28), true);
    Bytes gz(fs::file_size(path));
    {
        std::ifstream in(path, std::ios::binary);
        in.read(reinterpret_cast<char*>(gz.data()), std::streamsize(gz.size()));
    }
    gz.resize(gz.size() / 2);
    writeFile(path, gz);
    BOOST_CHECK_EXCEPTION(io::readIdx(dir, "test", "mnist"), std::runtime_error,
                          messageContains(path + ": truncated"));
}

namespace {

Bytes readAll(const std::string& path) {
    Bytes b(fs::file_size(path));
    std::ifstream in(path, std::ios::binary);
    in.read(reinterpret_cast<char*>(b.data()), std::streamsize(b.size()));
    return b;
}

/// IDX images whose pixels are random in [0, 16): a long gzip stream of Huffman codes.
Bytes noisyIdxImages(std::uint32_t count, std::uint32_t seed) {
    Bytes b = idxImages(count, 28, 28);
    std::mt19937 rng(seed);
    for (std::size_t i = 16; i < b.size(); ++i) b[i] = static_cast<std::uint8_t>(rng() % 16);
    return b;
}

/// The number after `key` in `text` (-1 if absent).
long long numberAfter(const std::string& text, const std::string& key) {
    const std::size_t at = text.find(key);
    return at == std::string::npos ? -1 : std::atoll(text.c_str() + at + key.size());
}

}  // namespace

BOOST_AUTO_TEST_CASE(corrupt_gz_reports_where_it_failed) {
    // A damaged byte deep inside a gzip stream: the error says where (compressed offset and
    // how much was decompressed by then), not "after 0 bytes".
    const std::string dir = makeIdxDir("idx-corruptgz", 4, 2, 28, 28, true);
    const std::string path = (fs::path(dir) / "t10k-images-idx3-ubyte.gz").string();
    const Bytes images = noisyIdxImages(200, 3);  // 157 KB, about 80 KB compressed
    writeFile(path, images, true);
    const Bytes good = readAll(path);
    BOOST_REQUIRE(good.size() > 50000);
    int checked = 0, midStream = 0;
    for (std::size_t k = 1; k <= 20; ++k) {
        const std::size_t pos = k < 20 ? good.size() * k / 20 : good.size() - 6;  // 6: the CRC
        Bytes bad = good;
        bad[pos] = static_cast<std::uint8_t>(bad[pos] ^ 0xff);
        writeFile(path, bad);
        try {
            io::readIdx(dir, "test", "mnist");
            BOOST_ERROR("no error for a damaged byte at " << pos);
        } catch (const std::runtime_error& e) {
            const std::string m = e.what();
            BOOST_TEST(m.find(path + ": corrupt gzip stream at compressed byte ") !=
                           std::string::npos, m);
            const long long at = numberAfter(m, "at compressed byte ");
            const long long done = numberAfter(m, "(after ");
            BOOST_TEST(at >= static_cast<long long>(pos), m);  // found at or after the damage
            BOOST_TEST(at <= static_cast<long long>(good.size()), m);
            BOOST_TEST(m.find(" of " + std::to_string(good.size()) + " ") != std::string::npos, m);
            BOOST_TEST(done > 0, m);
            BOOST_TEST_MESSAGE(m);
            ++checked;
            if (at + 8 < static_cast<long long>(good.size())) ++midStream;
        }
    }
    BOOST_TEST(checked == 20);
    BOOST_TEST(midStream > 0);  // not all of them found only by the final CRC
    // cut in the middle: how much was there and how much came out
    writeFile(path, Bytes(good.begin(), good.begin() + std::ptrdiff_t(good.size() / 2)));
    try {
        io::readIdx(dir, "test", "mnist");
        BOOST_ERROR("no error for a truncated stream");
    } catch (const std::runtime_error& e) {
        const std::string m = e.what();
        BOOST_TEST(m.find(path + ": truncated gzip stream: it ends after " +
                          std::to_string(good.size() / 2) + " compressed bytes (") !=
                       std::string::npos, m);
        BOOST_TEST(numberAfter(m, "compressed bytes (") > 10000, m);
    }
}

BOOST_AUTO_TEST_CASE(gz_with_several_members_or_not_compressed) {
    // gzip's own rules: members concatenated (cat a.gz b.gz) read as one stream, trailing
    // zeros after the last member are ignored, and a ".gz" that is not gzipped is read as it is.
    const std::string dir = makeIdxDir("idx-members", 4, 3, 28, 28, true);
    const std::string path = (fs::path(dir) / "t10k-images-idx3-ubyte.gz").string();
    const Bytes images = noisyIdxImages(3, 5);
    const Bytes head(images.begin(), images.begin() + 1000);
    const Bytes tail(images.begin() + 1000, images.end());
    writeFile(path, head, true);
    Bytes joined = readAll(path);
    writeFile(path, tail, true);
    const Bytes second = readAll(path);
    joined.insert(joined.end(), second.begin(), second.end());
    joined.insert(joined.end(), 7, 0);  // padding, as some tape tools leave
    writeFile(path, joined);
    const io::Dataset fromMembers = io::readIdx(dir, "test", "mnist");
    writeFile(path, images);  // not compressed at all
    const io::Dataset plain = io::readIdx(dir, "test", "mnist");
    BOOST_TEST(fromMembers.count == 3);
    BOOST_TEST(fromMembers.images == plain.images);
    BOOST_TEST(plain.images[0] == images[16] / 255.0f);
}

BOOST_AUTO_TEST_CASE(trailing_data) {
    const std::string dir = makeIdxDir("idx-trailing", 4, 2, 3, 3, false);
    Bytes img = idxImages(4, 3, 3);
    img.push_back(0);
    writeFile(dir + "/train-images-idx3-ubyte", img);
    BOOST_CHECK_EXCEPTION(io::readIdx(dir, "train", "mnist"), std::runtime_error,
                          messageContains("train-images-idx3-ubyte: 53 bytes, expected 52"));
}

BOOST_AUTO_TEST_CASE(count_mismatch) {
    const std::string dir = makeIdxDir("idx-count", 4, 2, 3, 3, false);
    writeFile(dir + "/train-labels-idx1-ubyte", idxLabels(5));
    BOOST_CHECK_EXCEPTION(io::readIdx(dir, "train", "mnist"), std::runtime_error,
                          messageContains("train-images-idx3-ubyte has 4 images but " +
                                          (fs::path(dir) / "train-labels-idx1-ubyte").string() +
                                          " has 5 labels"));
}

BOOST_AUTO_TEST_CASE(label_out_of_range) {
    const std::string dir = makeIdxDir("idx-label", 4, 2, 3, 3, true);
    Bytes lab = idxLabels(2);
    lab[8 + 1] = 10;
    writeFile(dir + "/t10k-labels-idx1-ubyte.gz", lab, true);
    BOOST_CHECK_EXCEPTION(io::readIdx(dir, "test", "mnist"), std::runtime_error,
                          messageContains("t10k-labels-idx1-ubyte.gz: label 10 at index 1 out of "
                                          "range [0, 10)"));
}

BOOST_AUTO_TEST_CASE(bad_image_size) {
    const std::string dir = makeIdxDir("idx-dims", 4, 2, 3, 3, false);
    writeFile(dir + "/train-images-idx3-ubyte", idxImages(4, 0, 3));
    BOOST_CHECK_EXCEPTION(io::readIdx(dir, "train", "mnist"), std::runtime_error,
                          messageContains("bad image size 0x3"));
}

BOOST_AUTO_TEST_CASE(unknown_split) {
    BOOST_CHECK_EXCEPTION(io::readIdx("/tmp", "valid", "mnist"), std::invalid_argument,
                          messageContains("unknown split 'valid'; known: train, test"));
}

BOOST_AUTO_TEST_SUITE_END()

// ---------------------------------------------------------------------------------------------
BOOST_AUTO_TEST_SUITE(cifar10)

BOOST_AUTO_TEST_CASE(reads_planes_and_labels) {
    const std::string dir = makeCifarDir("cifar-read", 2, 3);
    const io::Dataset train = io::readCifar10(dir, "train");
    BOOST_TEST(train.name == "cifar10/train");
    BOOST_TEST(train.count == 10);
    BOOST_TEST(train.channels == 3);
    BOOST_TEST(train.height == 32);
    BOOST_TEST(train.width == 32);
    BOOST_REQUIRE_EQUAL(train.images.size(), std::size_t(10 * 3072));
    for (std::uint32_t g = 0; g < 10; ++g) {
        BOOST_TEST(train.labels[g] == idxLabel(g));
        for (std::uint32_t c = 0; c < 3; ++c)
            for (std::uint32_t y : {0u, 7u, 31u})
                for (std::uint32_t x : {0u, 13u, 31u})
                    BOOST_TEST(train.image(g)[(c * 32 + y) * 32 + x] ==
                               cifarPixel(g, c, y, x) / 255.0f);
    }
    const io::Dataset test = io::readCifar10(dir, "test");
    BOOST_TEST(test.name == "cifar10/test");
    BOOST_TEST(test.count == 3);
    BOOST_TEST(test.labels[2] == idxLabel(1002));
    BOOST_TEST(test.image(2)[(2 * 32 + 5) * 32 + 9] == cifarPixel(1002, 2, 5, 9) / 255.0f);
}

BOOST_AUTO_TEST_CASE(missing_batch) {
    const std::string dir = makeCifarDir("cifar-missing", 1, 1);
    fs::remove(dir + "/data_batch_3.bin");
    BOOST_CHECK_EXCEPTION(io::readCifar10(dir, "train"), std::runtime_error,
                          messageContains((fs::path(dir) / "data_batch_3.bin").string() +
                                          " missing"));
    BOOST_CHECK_NO_THROW(io::readCifar10(dir, "test"));
    fs::remove(dir + "/test_batch.bin");
    BOOST_CHECK_EXCEPTION(io::readCifar10(dir, "test"), std::runtime_error,
                          messageContains("test_batch.bin missing"));
}

BOOST_AUTO_TEST_CASE(size_not_multiple_of_record) {
    const std::string dir = makeCifarDir("cifar-size", 2, 1);
    Bytes b = cifarBatch(0, 2);
    b.resize(b.size() - 100);
    writeFile(dir + "/data_batch_2.bin", b);
    BOOST_CHECK_EXCEPTION(io::readCifar10(dir, "train"), std::runtime_error,
                          messageContains((fs::path(dir) / "data_batch_2.bin").string() +
                                          ": size 6046 bytes is not a positive multiple of 3073"));
    writeFile(dir + "/data_batch_2.bin", Bytes{});
    BOOST_CHECK_EXCEPTION(io::readCifar10(dir, "train"), std::runtime_error,
                          messageContains("data_batch_2.bin: size 0 bytes"));
}

BOOST_AUTO_TEST_CASE(label_out_of_range) {
    const std::string dir = makeCifarDir("cifar-label", 2, 2);
    Bytes b = cifarBatch(0, 2);
    b[3073] = 200;  // second record's label
    writeFile(dir + "/test_batch.bin", b);
    BOOST_CHECK_EXCEPTION(io::readCifar10(dir, "test"), std::runtime_error,
                          messageContains("test_batch.bin: label 200 in record 1 out of range "
                                          "[0, 10)"));
}

BOOST_AUTO_TEST_SUITE_END()

// ---------------------------------------------------------------------------------------------
BOOST_AUTO_TEST_SUITE(load_dataset)

BOOST_AUTO_TEST_CASE(idx_normalized_per_channel) {
    const std::string dir = makeIdxDir("load-idx", 20, 6, 28, 28, true);
    const io::DataSplit s = io::loadDataset("fashion-mnist", dir);
    BOOST_TEST(s.train.name == "fashion-mnist/train");
    BOOST_TEST(s.test.name == "fashion-mnist/test");
    BOOST_TEST(s.train.count == 20);
    BOOST_TEST(s.test.count == 6);
    BOOST_TEST(!s.train.augment);
    BOOST_REQUIRE_EQUAL(s.mean.size(), 1u);
    BOOST_REQUIRE_EQUAL(s.stddev.size(), 1u);
    std::vector<double> m, sd;
    naiveStats(s.train, m, sd);
    BOOST_TEST(std::abs(m[0]) < 1e-5);
    BOOST_TEST(sd[0] == 1.0, boost::test_tools::tolerance(1e-4));
    // The raw statistics match a naive computation, and test uses train's statistics.
    const io::Dataset rawTrain = io::readIdx(dir, "train", "fashion-mnist");
    const io::Dataset rawTest = io::readIdx(dir, "test", "fashion-mnist");
    naiveStats(rawTrain, m, sd);
    BOOST_TEST(s.mean[0] == m[0], boost::test_tools::tolerance(1e-5));
    BOOST_TEST(s.stddev[0] == sd[0], boost::test_tools::tolerance(1e-4));
    for (std::size_t k = 0; k < rawTest.images.size(); k += 97)
        BOOST_TEST(s.test.images[k] == (rawTest.images[k] - s.mean[0]) / s.stddev[0],
                   boost::test_tools::tolerance(1e-5f));
}

BOOST_AUTO_TEST_CASE(limits) {
    const std::string dir = makeIdxDir("load-limit", 20, 6, 5, 5, false);
    const io::DataSplit s = io::loadDataset("mnist", dir, 8, 4);
    BOOST_TEST(s.train.count == 8);
    BOOST_TEST(s.test.count == 4);
    BOOST_TEST(s.train.images.size() == std::size_t(8 * 25));
    BOOST_TEST(s.train.labels.size() == 8u);
    // Statistics come from the limited train set only.
    io::Dataset first8 = io::readIdx(dir, "train", "mnist");
    first8.count = 8;
    first8.images.resize(8 * 25);
    std::vector<double> m, sd;
    naiveStats(first8, m, sd);
    BOOST_TEST(s.mean[0] == m[0], boost::test_tools::tolerance(1e-5));
    // A limit beyond the count keeps everything.
    BOOST_TEST(io::loadDataset("mnist", dir, 1000).train.count == 20);
    BOOST_CHECK_EXCEPTION(io::loadDataset("mnist", dir, -1), std::invalid_argument,
                          messageContains("trainLimit must be >= 0 (got -1)"));
}

BOOST_AUTO_TEST_CASE(cifar_three_channels_and_augment) {
    const std::string dir = makeCifarDir("load-cifar", 3, 4);
    const io::DataSplit s = io::loadDataset("cifar10", dir, 7);
    BOOST_TEST(s.train.name == "cifar10/train");
    BOOST_TEST(s.train.count == 7);  // crosses from batch 2 into batch 3
    BOOST_TEST(s.train.labels[6] == idxLabel(6));
    BOOST_TEST(s.test.count == 4);
    BOOST_TEST(s.train.augment);
    BOOST_TEST(!s.test.augment);
    BOOST_REQUIRE_EQUAL(s.mean.size(), 3u);
    std::vector<double> m, sd;
    naiveStats(s.train, m, sd);
    for (int c = 0; c < 3; ++c) {
        BOOST_TEST(std::abs(m[std::size_t(c)]) < 1e-5);
        BOOST_TEST(sd[std::size_t(c)] == 1.0, boost::test_tools::tolerance(1e-4));
    }
    // Channels have different raw means (the pattern adds 85 per channel).
    BOOST_TEST(s.mean[0] != s.mean[1]);
}

BOOST_AUTO_TEST_CASE(unknown_name) {
    BOOST_CHECK_EXCEPTION(io::loadDataset("mnsit", "/tmp"), std::invalid_argument,
                          messageContains("loadDataset(): unknown dataset 'mnsit'; known: mnist, "
                                          "fashion-mnist, cifar10, folder"));
    const auto names = io::datasetNames();
    BOOST_TEST(names == (std::vector<std::string>{"mnist", "fashion-mnist", "cifar10", "folder"}));
}

BOOST_AUTO_TEST_CASE(file_errors_propagate) {
    const std::string dir = makeCifarDir("load-cifar-err", 1, 1);
    fs::remove(dir + "/data_batch_5.bin");
    BOOST_CHECK_EXCEPTION(io::loadDataset("cifar10", dir), std::runtime_error,
                          messageContains("data_batch_5.bin missing"));
}

BOOST_AUTO_TEST_CASE(normalize_rejects_bad_stats) {
    io::Dataset d = patternDataset(2, 3, 4, 4);
    BOOST_CHECK_EXCEPTION(io::normalize(d, {0, 0}, {1, 1}), std::invalid_argument,
                          messageContains("has 3 channels, got 2 means"));
    BOOST_CHECK_EXCEPTION(io::normalize(d, {0, 0, 0}, {1, 0, 1}), std::invalid_argument,
                          messageContains("stddev[1] must be finite and > 0"));
}

BOOST_AUTO_TEST_CASE(constant_channel_keeps_unit_stddev) {
    io::Dataset d = patternDataset(2, 1, 3, 3);
    std::fill(d.images.begin(), d.images.end(), 0.5f);
    std::vector<float> m, sd;
    io::channelStats(d, m, sd);
    BOOST_TEST(m[0] == 0.5f);
    BOOST_TEST(sd[0] == 1.0f);
}

BOOST_AUTO_TEST_SUITE_END()

// ---------------------------------------------------------------------------------------------
BOOST_AUTO_TEST_SUITE(gather_batch)

BOOST_AUTO_TEST_CASE(copies_without_augmentation) {
    io::Dataset d = patternDataset(6, 3, 5, 4);
    const std::vector<Index> idx{4, 0, 4, 2};
    std::vector<float> dst(idx.size() * std::size_t(d.imageSize()), -1.0f);
    std::vector<std::int32_t> labels(idx.size(), -1);
    std::mt19937_64 rng(3);
    // augment off (rng ignored), and augment on without an rng: plain copies.
    for (bool augment : {false, true}) {
        d.augment = augment;
        io::gatherBatch(d, idx, dst.data(), labels.data(), augment ? nullptr : &rng);
        for (std::size_t b = 0; b < idx.size(); ++b) {
            BOOST_TEST(labels[b] == d.labels[std::size_t(idx[b])]);
            BOOST_TEST(std::equal(d.image(idx[b]), d.image(idx[b]) + d.imageSize(),
                                  dst.data() + b * std::size_t(d.imageSize())));
        }
    }
}

BOOST_AUTO_TEST_CASE(rejects_bad_index) {
    const io::Dataset d = patternDataset(3, 1, 2, 2);
    std::vector<float> dst(4);
    std::int32_t label = 0;
    BOOST_CHECK_EXCEPTION(io::gatherBatch(d, {3}, dst.data(), &label, nullptr), std::out_of_range,
                          messageContains("index 3 out of range for 'pattern/train' with 3 images"));
}

BOOST_AUTO_TEST_CASE(augmentation_matches_reference) {
    // CIFAR-shaped, and a small non-square shape where most crops hit the padding.
    for (const auto& [H, W] : {std::pair<Index, Index>{32, 32}, {6, 5}}) {
        io::Dataset d = patternDataset(4, 3, H, W);
        d.augment = true;
        std::mt19937_64 rng(42);
        std::map<Geometry, int> seen;
        std::vector<Index> idx{0, 1, 2, 3, 3, 2, 1, 0};
        std::vector<float> dst(idx.size() * std::size_t(d.imageSize()));
        std::vector<std::int32_t> labels(idx.size());
        const int rounds = H == 32 ? 100 : 400;
        int flips = 0, total = 0;
        for (int r = 0; r < rounds; ++r) {
            io::gatherBatch(d, idx, dst.data(), labels.data(), &rng);
            for (std::size_t b = 0; b < idx.size(); ++b) {
                BOOST_TEST(labels[b] == d.labels[std::size_t(idx[b])]);
                const auto g = matchingGeometries(d, idx[b], dst.data() + b * std::size_t(d.imageSize()));
                // Distinct pixels: some geometry explains the output; on 32x32 exactly one.
                BOOST_REQUIRE(!g.empty());
                if (H > 4 && W > 8) BOOST_REQUIRE_EQUAL(g.size(), 1u);
                if (g.size() == 1) {
                    ++seen[g[0]];
                    flips += g[0].flip;
                    ++total;
                }
            }
        }
        if (H == 32) {
            // 800 draws over 162 geometries: every offset row/column and both flips occur.
            std::set<int> oys, oxs;
            for (const auto& [g, n] : seen) {
                oys.insert(g.oy);
                oxs.insert(g.ox);
            }
            BOOST_TEST(oys.size() == 9u);
            BOOST_TEST(oxs.size() == 9u);
            BOOST_TEST(seen.size() > 120u);
            BOOST_TEST(std::abs(double(flips) / total - 0.5) < 0.06);
        }
    }
}

BOOST_AUTO_TEST_CASE(deterministic_for_a_seed) {
    io::Dataset d = patternDataset(5, 3, 32, 32);
    d.augment = true;
    const std::vector<Index> idx{0, 1, 2, 3, 4, 0, 1};
    const auto run = [&](std::uint64_t seed) {
        std::mt19937_64 rng(seed);
        std::vector<float> dst(idx.size() * std::size_t(d.imageSize()));
        std::vector<std::int32_t> labels(idx.size());
        io::gatherBatch(d, idx, dst.data(), labels.data(), &rng);
        io::gatherBatch(d, idx, dst.data(), labels.data(), &rng);  // second batch from the stream
        return dst;
    };
    BOOST_TEST((run(7) == run(7)));
    BOOST_TEST((run(7) != run(8)));
}

BOOST_AUTO_TEST_SUITE_END()

// ---------------------------------------------------------------------------------------------
BOOST_AUTO_TEST_SUITE(real_data)

namespace {

/// DIR/<name> where DIR is $TERN_TEST_DATA_DIR when set, else the source tree's data/ (point the
/// variable at an empty directory to see the tests skipped).
std::string realDataDir(const std::string& name) {
    const char* env = std::getenv("TERN_TEST_DATA_DIR");
    return (env && *env ? std::string(env) : std::string(TERN_SOURCE_DIR) + "/data") + "/" + name;
}

/// Precondition: the training images of dataset `name` are in realDataDir(name). A test case
/// without them is skipped, and ctest reports SKIPPED (tests/io_datasets.cmake).
struct HaveDataset {
    std::string name;
    boost::test_tools::assertion_result operator()(boost::unit_test::test_unit_id) const {
        const std::string dir = realDataDir(name);
        boost::test_tools::assertion_result r(fs::exists(dir + "/train-images-idx3-ubyte") ||
                                              fs::exists(dir + "/train-images-idx3-ubyte.gz"));
        if (!r) r.message() << "no " << name << " in " << dir << " (run data/fetch.sh)";
        return r;
    }
};

/// Reads the dataset and checks its sizes, its published pixel statistics (train set) and that
/// every class is well represented.
void checkRealIdx(const std::string& name, double mean, double stddev) {
    const io::DataSplit s = io::loadDataset(name, realDataDir(name));
    BOOST_TEST(s.train.count == 60000);
    BOOST_TEST(s.test.count == 10000);
    BOOST_TEST(s.train.height == 28);
    BOOST_TEST(s.train.width == 28);
    BOOST_TEST(s.mean[0] == mean, boost::test_tools::tolerance(1e-3));
    BOOST_TEST(s.stddev[0] == stddev, boost::test_tools::tolerance(1e-3));
    std::vector<int> hist(10, 0);
    for (const auto l : s.train.labels) ++hist[std::size_t(l)];
    for (int c = 0; c < 10; ++c) BOOST_TEST(hist[std::size_t(c)] > 5000);
    BOOST_TEST_MESSAGE(name << ": read " << s.train.count << " + " << s.test.count
                            << " images, mean " << s.mean[0] << ", stddev " << s.stddev[0]);
}

}  // namespace

/// The real MNIST / Fashion-MNIST from data/fetch.sh; each its own ctest test, SKIPPED when absent.
BOOST_AUTO_TEST_CASE(mnist, *boost::unit_test::precondition(HaveDataset{"mnist"})) {
    checkRealIdx("mnist", 0.1307, 0.3081);
}

BOOST_AUTO_TEST_CASE(fashion_mnist, *boost::unit_test::precondition(HaveDataset{"fashion-mnist"})) {
    checkRealIdx("fashion-mnist", 0.2860, 0.3530);
}

BOOST_AUTO_TEST_SUITE_END()
