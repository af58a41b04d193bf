// Image folders (io/image_folder.hpp): the tests write their own JPEG (TurboJPEG) and PNG
// (libpng) trees. Without image support in the build, every case is SKIPPED
// (tests/image_folder.cmake).
#define BOOST_TEST_MODULE image_folder
#include <boost/test/unit_test.hpp>

#include "tern/io/image_folder.hpp"
#include "tern/io/integrity.hpp"
#include "testing/helpers.hpp"

#ifdef TERN_HAVE_IMAGE_FOLDER
#include "tern/deploy/model.hpp"
#include "tern/io/checkpoint.hpp"
#include "tern/run/train.hpp"

#include <png.h>
#include <turbojpeg.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <random>
#include <set>
#endif

namespace utf = boost::unit_test;

#ifndef TERN_HAVE_IMAGE_FOLDER

/// Always false here: the reason ctest -V shows for the SKIPPED test.
struct HaveImageSupport {
    boost::test_tools::assertion_result operator()(utf::test_unit_id) const {
        boost::test_tools::assertion_result r(tern::io::imageFolderSupported());
        if (!r) r.message() << "tern was built without image support (libturbojpeg, libpng)";
        return r;
    }
};

BOOST_AUTO_TEST_CASE(image_folder_support, *utf::precondition(HaveImageSupport{})) {
    BOOST_TEST(tern::io::imageFolderSupported());
}

#else

using namespace tern;
using namespace tern::io;
using tern::testing::messageContains;
namespace fs = std::filesystem;

namespace {

/// An 8-bit image, row-major, `channels` (1 or 3) bytes per pixel.
struct Image {
    int width = 0, height = 0, channels = 3;
    std::vector<unsigned char> px;
    unsigned char at(int x, int y, int c) const {
        return px[static_cast<size_t>((y * width + x) * channels + (channels == 1 ? 0 : c))];
    }
};

Image randomImage(int w, int h, std::uint64_t seed, int channels = 3) {
    std::mt19937_64 r(seed);
    Image im{w, h, channels, std::vector<unsigned char>(static_cast<size_t>(w * h * channels))};
    for (auto& p : im.px) p = static_cast<unsigned char>(r() & 0xFF);
    return im;
}

/// A smooth image (gradients): JPEG keeps it well.
Image smoothImage(int w, int h, int phase = 0) {
    Image im{w, h, 3, std::vector<unsigned char>(static_cast<size_t>(w * h * 3))};
    for (int y = 0; y < h; ++y)
        for (int x = 0; x < w; ++x) {
            unsigned char* p = im.px.data() + (y * w + x) * 3;
            p[0] = static_cast<unsigned char>(255 * x / std::max(1, w - 1));
            p[1] = static_cast<unsigned char>(255 * y / std::max(1, h - 1));
            p[2] = static_cast<unsigned char>((x + y + phase) % 256);
        }
    return im;
}

void writeJpeg(const fs::path& path, const Image& im, int quality = 100) {
    tjhandle h = tjInitCompress();
    BOOST_REQUIRE(h != nullptr);
    unsigned char* buf = nullptr;
    unsigned long size = 0;
    const int rc = tjCompress2(h, im.px.data(), im.width, 0, im.height,
                               im.channels == 1 ? TJPF_GRAY : TJPF_RGB, &buf, &size,
                               im.channels == 1 ? TJSAMP_GRAY : TJSAMP_444, quality,
                               TJFLAG_ACCURATEDCT);
    BOOST_REQUIRE_MESSAGE(rc == 0, "tjCompress2: " << tjGetErrorStr2(h));
    std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(buf), std::streamsize(size));
    tjFree(buf);
    tjDestroy(h);
}

void writePng(const fs::path& path, const Image& im) {
    png_image p;
    std::memset(&p, 0, sizeof p);
    p.version = PNG_IMAGE_VERSION;
    p.width = static_cast<png_uint_32>(im.width);
    p.height = static_cast<png_uint_32>(im.height);
    p.format = im.channels == 1 ? PNG_FORMAT_GRAY : PNG_FORMAT_RGB;
    BOOST_REQUIRE_MESSAGE(png_image_write_to_file(&p, path.c_str(), 0, im.px.data(), 0, nullptr),
                          "png_image_write_to_file: " << p.message);
}

void writeText(const fs::path& path, const std::string& text) {
    std::ofstream(path, std::ios::binary) << text;
}

/// Options that leave pixels as they are: mean 0, std 1 (values v / 255).
ImageFolderOptions plain(Index size, Index resize = 0) {
    ImageFolderOptions o;
    o.imageSize = size;
    o.resize = resize == 0 ? size : resize;
    o.mean = {0, 0, 0};
    o.stddev = {1, 1, 1};
    o.threads = 1;
    return o;
}

/// DIR/train/<cls>/ and DIR/val/<cls>/ for each class.
fs::path tree(const std::string& tag, const std::vector<std::string>& classes) {
    const fs::path d = tern::testing::tempDir(tag);
    for (const auto& c : classes) {
        fs::create_directories(d / "train" / c);
        fs::create_directories(d / "val" / c);
    }
    return d;
}

std::vector<float> readAll(const Dataset& d, std::mt19937_64* rng = nullptr,
                           std::vector<Index> idx = {}) {
    if (idx.empty())
        for (Index i = 0; i < d.count; ++i) idx.push_back(i);
    std::vector<float> out(idx.size() * static_cast<size_t>(d.imageSize()));
    d.source->read(idx, out.data(), rng);
    return out;
}

const ImageFolderSource& sourceOf(const Dataset& d) {
    return dynamic_cast<const ImageFolderSource&>(*d.source);
}

Index indexOf(const Dataset& d, const std::string& rel) {
    const auto& f = sourceOf(d).files();
    for (size_t i = 0; i < f.size(); ++i)
        if (f[i].path == rel) return static_cast<Index>(i);
    BOOST_FAIL("no file " << rel);
    return -1;
}

/// Collects io::warning() lines while alive.
struct Warnings {
    std::vector<std::string> lines;
    std::function<void(const std::string&)> previous;
    Warnings() {
        previous = setWarningHandler([this](const std::string& s) { lines.push_back(s); });
    }
    ~Warnings() { setWarningHandler(previous); }
    bool any(const std::string& needle) const {
        for (const auto& l : lines)
            if (l.find(needle) != std::string::npos) return true;
        return false;
    }
};

/// The naive reference of the resampler: output (x, y) is the weighted mean of the box's
/// pixels with weights tri(j - cx) tri(i - cy), tri(t) = max(0, 1 - |t| / support),
/// support = max(scale, 1), c = box start + (o + 0.5) scale - 0.5.
std::vector<double> naiveResample(const Image& im, const CropBox& b, int size) {
    std::vector<double> out(static_cast<size_t>(3 * size * size));
    const double sx = double(b.width) / size, sy = double(b.height) / size;
    const double px = std::max(sx, 1.0), py = std::max(sy, 1.0);
    for (int y = 0; y < size; ++y)
        for (int x = 0; x < size; ++x) {
            const double cx = b.x + (x + 0.5) * sx - 0.5, cy = b.y + (y + 0.5) * sy - 0.5;
            double acc[3] = {0, 0, 0}, wsum = 0;
            for (Index i = b.y; i < b.y + b.height; ++i)
                for (Index j = b.x; j < b.x + b.width; ++j) {
                    const double w = std::max(0.0, 1 - std::abs(double(j) - cx) / px) *
                                     std::max(0.0, 1 - std::abs(double(i) - cy) / py);
                    if (w <= 0) continue;
                    wsum += w;
                    for (int c = 0; c < 3; ++c) acc[c] += w * im.at(int(j), int(i), c);
                }
            for (int c = 0; c < 3; ++c) out[static_cast<size_t>((c * size + y) * size + x)] = acc[c] / wsum;
        }
    return out;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(scan)

BOOST_AUTO_TEST_CASE(classes_are_sorted_folder_names_and_labels_follow) {
    const fs::path d = tree("if-classes", {"b_cat", "a_dog", "c_emu"});
    fs::create_directories(d / "train" / ".hidden");  // ignored, as are hidden files
    writePng(d / "train" / ".hidden" / "x.png", randomImage(4, 4, 1));
    writePng(d / "train" / "a_dog" / ".x.png", randomImage(4, 4, 1));
    for (int i = 0; i < 3; ++i) {
        writePng(d / "train" / "a_dog" / ("d" + std::to_string(i) + ".PNG"), randomImage(5, 4, 10 + i));
        writeJpeg(d / "train" / "b_cat" / ("c" + std::to_string(i) + ".JPG"), smoothImage(6, 5, i));
        writeJpeg(d / "train" / "c_emu" / ("e" + std::to_string(i) + ".jpeg"), smoothImage(7, 5, i));
    }
    writeText(d / "train" / "c_emu" / "notes.txt", "not an image, not an image extension");
    writePng(d / "val" / "a_dog" / "v.png", randomImage(5, 5, 3));
    writeJpeg(d / "val" / "c_emu" / "v.jpg", smoothImage(5, 5));  // b_cat has no val images
    fs::remove(d / "val" / "b_cat");
    Warnings w;
    const DataSplit s = loadImageFolder(d.string(), plain(4));
    BOOST_TEST(w.any("has no folder for 1 of 3 classes (b_cat)"));
    BOOST_TEST(w.any("ignored 1 file(s) without a .jpg, .jpeg or .png extension (first: c_emu/notes.txt)"));
    BOOST_TEST(s.train.numClasses == 3);
    BOOST_TEST(s.test.numClasses == 3);
    BOOST_REQUIRE(s.train.count == 9);
    BOOST_TEST(s.test.count == 2);
    // the classes in turn: a_dog, b_cat, c_emu, a_dog, ...
    const auto& files = sourceOf(s.train).files();
    const std::vector<std::string> expected{"a_dog/d0.PNG", "b_cat/c0.JPG", "c_emu/e0.jpeg",
                                            "a_dog/d1.PNG", "b_cat/c1.JPG", "c_emu/e1.jpeg",
                                            "a_dog/d2.PNG", "b_cat/c2.JPG", "c_emu/e2.jpeg"};
    for (size_t i = 0; i < files.size(); ++i) {
        BOOST_TEST(files[i].path == expected[i]);
        BOOST_TEST(s.train.labels[i] == std::int32_t(i % 3));
        BOOST_TEST(files[i].png == (i % 3 == 0));
    }
    BOOST_TEST(s.test.labels == (std::vector<std::int32_t>{0, 2}));
    BOOST_TEST(s.train.augment);
    BOOST_TEST(!s.test.augment);
    BOOST_TEST(s.mean == (std::vector<float>{0, 0, 0}));
    // a limit keeps every class
    const DataSplit l = loadImageFolder(d.string(), plain(4), 4, 1);
    BOOST_TEST(l.train.labels == (std::vector<std::int32_t>{0, 1, 2, 0}));
    BOOST_TEST(l.test.count == 1);
    // streamed: nothing decoded is held
    BOOST_TEST(s.train.images.empty());
    BOOST_TEST(s.test.images.empty());
    std::vector<float> batch(static_cast<size_t>(2 * s.train.imageSize()));
    std::vector<std::int32_t> labels(2);
    std::mt19937_64 rng(5);
    gatherBatch(s.train, {1, 2}, batch.data(), labels.data(), &rng);
    BOOST_TEST(labels == (std::vector<std::int32_t>{1, 2}));
    readImages(s.test, 0, 2, batch.data());
    BOOST_TEST(s.train.images.empty());
    // the fingerprint follows the options and the files
    ImageFolderOptions bigger = plain(5);
    BOOST_TEST(loadImageFolder(d.string(), bigger).train.source->fingerprint() !=
               s.train.source->fingerprint());
    BOOST_TEST(loadImageFolder(d.string(), plain(4)).train.source->fingerprint() ==
               s.train.source->fingerprint());
    // loadDataset("folder", ...) is the same
    const DataSplit viaName = loadDataset("folder", d.string(), 0, 0, plain(4));
    BOOST_TEST(viaName.train.source->fingerprint() == s.train.source->fingerprint());
}

BOOST_AUTO_TEST_CASE(layout_errors_name_the_path) {
    const fs::path d = tree("if-layout", {"a", "b"});
    BOOST_CHECK_EXCEPTION(loadImageFolder((d / "nope").string(), plain(4)), std::runtime_error,
                          messageContains("nope is not a directory"));
    fs::remove_all(d / "val");
    BOOST_CHECK_EXCEPTION(loadImageFolder(d.string(), plain(4)), std::runtime_error,
                          messageContains((d / "val").string() + " missing"));
    fs::create_directories(d / "val" / "zebra");
    writePng(d / "train" / "a" / "1.png", randomImage(4, 4, 1));
    writePng(d / "train" / "b" / "1.png", randomImage(4, 4, 2));
    BOOST_CHECK_EXCEPTION(loadImageFolder(d.string(), plain(4)), std::runtime_error,
                          messageContains("zebra: class 'zebra' is not a class of " +
                                          (d / "train").string() + " (its 2 classes: a, b)"));
    const fs::path e = tern::testing::tempDir("if-noclass");
    fs::create_directories(e / "train");
    fs::create_directories(e / "val");
    BOOST_CHECK_EXCEPTION(loadImageFolder(e.string(), plain(4)), std::runtime_error,
                          messageContains("has no class folders"));
    // class folders holding no images: empty (fail), or no images at all (skip)
    const fs::path f = tree("if-noimages", {"a"});
    writeText(f / "train" / "a" / "x.txt", "x");
    BOOST_CHECK_EXCEPTION(loadImageFolder(f.string(), plain(4)), std::runtime_error,
                          messageContains((f / "train" / "a").string() + ": empty class folder"));
    ImageFolderOptions skip = plain(4);
    skip.badImages = BadImages::Skip;
    Warnings w;
    BOOST_CHECK_EXCEPTION(loadImageFolder(f.string(), skip), std::runtime_error,
                          messageContains((f / "train").string() + ": no images"));
    // bad options
    ImageFolderOptions bad = plain(4);
    bad.minScale = 0;
    BOOST_CHECK_EXCEPTION(loadImageFolder(d.string(), bad), std::invalid_argument,
                          messageContains("cropScale must satisfy"));
}

BOOST_AUTO_TEST_CASE(options_round_trip_and_refuse_bad_values) {
    ImageFolderOptions o;
    o.imageSize = 32;
    o.resize = 40;
    o.minScale = 0.25;
    o.minRatio = 0.5;
    o.mean = {0.5f, 0.25f, 0.125f};
    o.badImages = BadImages::Skip;
    ImageFolderOptions back;
    for (const auto& [k, v] : o.items()) back.set(k, v);
    BOOST_TEST(back.items() == o.items());
    BOOST_TEST(ImageFolderOptions{}.resizeSide() == 256);
    o.resize = 0;
    BOOST_TEST(o.resizeSide() == 37);
    BOOST_CHECK_EXCEPTION(back.set("mean", "0.5,0.5"), std::invalid_argument,
                          messageContains("--mean: expected R,G,B"));
    BOOST_CHECK_EXCEPTION(back.set("crop-scale", "0.1,x"), std::invalid_argument,
                          messageContains("'x' in '0.1,x' is not a finite number"));
    BOOST_CHECK_EXCEPTION(back.set("bad-images", "ignore"), std::invalid_argument,
                          messageContains("--bad-images must be fail or skip (got 'ignore')"));
    BOOST_CHECK_EXCEPTION(back.set("colour", "1"), std::invalid_argument,
                          messageContains("unknown key 'colour'"));
    ImageFolderOptions v;
    v.resize = 100;
    BOOST_CHECK_EXCEPTION(v.validate(), std::invalid_argument, messageContains("resize must be"));
    v = {};
    v.stddev = {1, 0, 1};
    BOOST_CHECK_EXCEPTION(v.validate(), std::invalid_argument, messageContains("std must be finite and > 0"));
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(pixels)

BOOST_AUTO_TEST_CASE(png_decodes_exactly_and_jpeg_q100_closely) {
    const fs::path d = tree("if-pixels", {"a"});
    const Image png = randomImage(7, 7, 42), jpg = smoothImage(16, 16);
    writePng(d / "train" / "a" / "p.png", png);
    writeJpeg(d / "train" / "a" / "q.jpg", jpg, 100);
    writePng(d / "val" / "a" / "p.png", png);
    const DataSplit s7 = loadImageFolder(d.string(), plain(7));
    const std::vector<float> out = readAll(s7.train, nullptr, {indexOf(s7.train, "a/p.png")});
    for (int c = 0; c < 3; ++c)
        for (int y = 0; y < 7; ++y)
            for (int x = 0; x < 7; ++x)
                BOOST_TEST(out[static_cast<size_t>((c * 7 + y) * 7 + x)] * 255.0f ==
                               float(png.at(x, y, c)),
                           boost::test_tools::tolerance(1e-4f));
    const DataSplit s16 = loadImageFolder(d.string(), plain(16));
    const std::vector<float> q = readAll(s16.train, nullptr, {indexOf(s16.train, "a/q.jpg")});
    double worst = 0, sum = 0;
    for (int c = 0; c < 3; ++c)
        for (int y = 0; y < 16; ++y)
            for (int x = 0; x < 16; ++x) {
                const double e = std::abs(q[static_cast<size_t>((c * 16 + y) * 16 + x)] * 255.0 -
                                          jpg.at(x, y, c));
                worst = std::max(worst, e);
                sum += e;
            }
    BOOST_TEST(worst <= 3.0);                  // quality 100, 4:4:4
    BOOST_TEST(sum / (3 * 16 * 16) <= 1.0);
}

BOOST_AUTO_TEST_CASE(eval_resize_and_center_crop_match_a_naive_reference) {
    const fs::path d = tree("if-eval", {"a"});
    const Image wide = randomImage(40, 30, 7), small = randomImage(12, 10, 8);
    writePng(d / "train" / "a" / "wide.png", wide);
    writePng(d / "train" / "a" / "small.png", small);
    writePng(d / "val" / "a" / "wide.png", wide);
    struct Case {
        const Image* im;
        std::string file;
        Index size, resize;
    };
    // downscaling (box 24 -> 16: antialiased) and upscaling (box 10 -> 16)
    for (const Case& k : {Case{&wide, "a/wide.png", 16, 20}, Case{&small, "a/small.png", 16, 16},
                          Case{&wide, "a/wide.png", 8, 0}}) {
        const ImageFolderOptions o = plain(k.size, k.resize);
        const DataSplit s = loadImageFolder(d.string(), o);
        const CropBox b = centerCrop(k.im->width, k.im->height, o);
        const Index shorter = std::min(k.im->width, k.im->height);
        BOOST_TEST(b.width == std::lround(double(k.size) * shorter / double(o.resizeSide())));
        BOOST_TEST(b.x == (k.im->width - b.width) / 2);
        BOOST_TEST(b.y == (k.im->height - b.height) / 2);
        const std::vector<float> out = readAll(s.train, nullptr, {indexOf(s.train, k.file)});
        const std::vector<double> ref = naiveResample(*k.im, b, int(k.size));
        double worst = 0;
        for (size_t i = 0; i < ref.size(); ++i) worst = std::max(worst, std::abs(out[i] * 255.0 - ref[i]));
        BOOST_TEST(worst < 1e-3, k.file << " at " << k.size << ": largest difference " << worst);
    }
    // a JPEG shrunk by DCT scaling at decode time stays close to the full-size PNG path
    const fs::path e = tree("if-dct", {"a"});
    const Image big = smoothImage(256, 192);
    writeJpeg(e / "train" / "a" / "big.jpg", big, 98);
    writePng(e / "train" / "a" / "big.png", big);
    writePng(e / "val" / "a" / "big.png", big);
    const DataSplit s = loadImageFolder(e.string(), plain(32, 40));
    const std::vector<float> viaJpeg = readAll(s.train, nullptr, {indexOf(s.train, "a/big.jpg")});
    const std::vector<float> viaPng = readAll(s.train, nullptr, {indexOf(s.train, "a/big.png")});
    double mean = 0;
    for (size_t i = 0; i < viaJpeg.size(); ++i) mean += std::abs(viaJpeg[i] - viaPng[i]);
    mean /= double(viaJpeg.size());
    BOOST_TEST(mean < 0.02, "JPEG (DCT-scaled) vs PNG: mean difference " << mean);
}

BOOST_AUTO_TEST_CASE(normalization_uses_the_options_mean_and_std) {
    const fs::path d = tree("if-norm", {"a"});
    Image flat{9, 9, 3, {}};
    for (int i = 0; i < 81; ++i) flat.px.insert(flat.px.end(), {100, 150, 200});
    writePng(d / "train" / "a" / "f.png", flat);
    writePng(d / "val" / "a" / "f.png", flat);
    ImageFolderOptions o;  // ImageNet's defaults
    o.imageSize = 8;
    const DataSplit s = loadImageFolder(d.string(), o);
    BOOST_TEST(s.mean == o.mean);
    BOOST_TEST(s.stddev == o.stddev);
    std::mt19937_64 rng(3);
    for (std::mt19937_64* r : {static_cast<std::mt19937_64*>(nullptr), &rng}) {
        const std::vector<float> out = readAll(s.train, r);
        const float v[3] = {100, 150, 200};
        for (int c = 0; c < 3; ++c) {
            const float want = (v[c] / 255.0f - o.mean[size_t(c)]) / o.stddev[size_t(c)];
            for (int k = 0; k < 64; ++k)
                BOOST_TEST(out[size_t(c * 64 + k)] == want, boost::test_tools::tolerance(1e-4f));
        }
    }
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(augmentation)

BOOST_AUTO_TEST_CASE(random_resized_crop_stays_inside_and_is_deterministic) {
    ImageFolderOptions o;
    std::set<std::pair<Index, Index>> sizes;
    int fallbacks = 0;
    for (const auto& [w, h] : std::vector<std::pair<Index, Index>>{{500, 375}, {64, 64}, {3, 200}, {1, 1}}) {
        for (std::uint64_t seed = 0; seed < 2000; ++seed) {
            const CropBox b = randomResizedCrop(w, h, o, seed);
            BOOST_REQUIRE(b.width >= 1);
            BOOST_REQUIRE(b.height >= 1);
            BOOST_REQUIRE(b.x >= 0);
            BOOST_REQUIRE(b.y >= 0);
            BOOST_REQUIRE(b.x + b.width <= w);
            BOOST_REQUIRE(b.y + b.height <= h);
            const CropBox again = randomResizedCrop(w, h, o, seed);
            BOOST_REQUIRE(again.x == b.x && again.y == b.y && again.width == b.width &&
                          again.height == b.height && again.flip == b.flip);
            if (w == 500) {
                const double area = double(b.width * b.height) / (500.0 * 375.0);
                BOOST_REQUIRE(area >= 0.079);
                BOOST_REQUIRE(area <= 1.0);
                const double ratio = double(b.width) / double(b.height);
                BOOST_REQUIRE(ratio >= 0.74);
                BOOST_REQUIRE(ratio <= 1.35);
                sizes.insert({b.width, b.height});
            }
            if (w == 3) ++fallbacks;
        }
    }
    BOOST_TEST(sizes.size() > 500u);  // the crops vary
    // a 3x200 image never fits the ratio range: the centred fallback, ratio clamped to 3/4
    const CropBox f = randomResizedCrop(3, 200, o, 9);
    BOOST_TEST(f.width == 3);
    BOOST_TEST(f.height == 4);
    BOOST_TEST(f.y == 98);
    BOOST_TEST(fallbacks == 2000);
}

BOOST_AUTO_TEST_CASE(batches_do_not_depend_on_the_thread_count) {
    const fs::path d = tree("if-threads", {"a", "b"});
    for (int i = 0; i < 6; ++i) {
        writeJpeg(d / "train" / "a" / ("j" + std::to_string(i) + ".jpg"), smoothImage(60 + 7 * i, 45, i));
        writePng(d / "train" / "b" / ("p" + std::to_string(i) + ".png"), randomImage(50, 40 + i, 100 + i));
    }
    writePng(d / "val" / "a" / "v.png", randomImage(30, 30, 1));
    writePng(d / "val" / "b" / "v.png", randomImage(30, 30, 2));
    std::vector<std::vector<float>> outs;
    for (int threads : {1, 2, 3}) {
        ImageFolderOptions o;
        o.imageSize = 24;
        o.threads = threads;
        const DataSplit s = loadImageFolder(d.string(), o);
        std::mt19937_64 rng(77);
        outs.push_back(readAll(s.train, &rng, {0, 3, 5, 1, 11, 7, 2, 9, 4, 4}));
        BOOST_TEST(rng() == [] {  // one draw per image
            std::mt19937_64 r(77);
            r.discard(10);
            return r();
        }());
    }
    BOOST_TEST((outs[0] == outs[1]));
    BOOST_TEST((outs[0] == outs[2]));
    // the same index twice in a batch gets two different crops; another seed other batches
    const size_t img = 3 * 24 * 24;
    BOOST_TEST(!std::equal(outs[0].begin() + 8 * img, outs[0].begin() + 9 * img, outs[0].begin() + 9 * img));
    ImageFolderOptions o;
    o.imageSize = 24;
    const DataSplit s = loadImageFolder(d.string(), o);
    std::mt19937_64 other(78);
    BOOST_TEST((readAll(s.train, &other, {0, 3, 5, 1, 11, 7, 2, 9, 4, 4}) != outs[0]));
}

BOOST_AUTO_TEST_CASE(flip_mirrors_the_image_as_the_seed_says) {
    const fs::path d = tree("if-flip", {"a"});
    const Image im = randomImage(8, 8, 5);
    writePng(d / "train" / "a" / "x.png", im);
    writePng(d / "val" / "a" / "x.png", im);
    ImageFolderOptions o = plain(8);
    o.minScale = o.maxScale = 1;  // the whole image: only the flip varies
    o.minRatio = o.maxRatio = 1;
    const DataSplit s = loadImageFolder(d.string(), o);
    int flipped = 0;
    for (std::uint64_t seed = 0; seed < 16; ++seed) {
        std::mt19937_64 rng(seed);
        const std::uint64_t imageSeed = std::mt19937_64(seed)();  // the source's first draw
        const bool flip = randomResizedCrop(8, 8, o, imageSeed).flip;
        const std::vector<float> out = readAll(s.train, &rng, {0});
        for (int c = 0; c < 3; ++c)
            for (int y = 0; y < 8; ++y)
                for (int x = 0; x < 8; ++x)
                    BOOST_REQUIRE(std::abs(out[size_t((c * 8 + y) * 8 + x)] * 255.0f -
                                           float(im.at(flip ? 7 - x : x, y, c))) < 1e-3f);
        flipped += flip;
    }
    BOOST_TEST(flipped > 2);
    BOOST_TEST(flipped < 14);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(bad_input)

/// A tree with good images and one bad file `bad` in class a (written by `make`).
struct BadTree {
    fs::path dir;
    BadTree(const std::string& tag, const std::string& bad,
            const std::function<void(const fs::path&)>& make) {
        dir = tree(tag, {"a", "b"});
        for (int i = 0; i < 3; ++i) {
            writePng(dir / "train" / "a" / ("a" + std::to_string(i) + ".png"), randomImage(6, 6, i));
            writePng(dir / "train" / "b" / ("b" + std::to_string(i) + ".png"), randomImage(6, 6, 10 + i));
        }
        writePng(dir / "val" / "a" / "v.png", randomImage(6, 6, 20));
        writePng(dir / "val" / "b" / "v.png", randomImage(6, 6, 21));
        make(dir / "train" / "a" / bad);
    }
};

ImageFolderOptions policy(BadImages b) {
    ImageFolderOptions o = plain(6);
    o.badImages = b;
    return o;
}

BOOST_AUTO_TEST_CASE(files_found_bad_at_scan_time) {
    struct Case {
        std::string name, file, message;
        std::function<void(const fs::path&)> make;
    };
    const std::vector<Case> cases{
        {"not an image", "readme.jpg", "not a JPEG or PNG file (it starts with bytes 68 65 6C 6C)",
         [](const fs::path& p) { writeText(p, "hello, I am text"); }},
        {"empty", "zero.png", "empty file (0 bytes)", [](const fs::path& p) { writeText(p, ""); }},
        {"dangling link", "gone.jpg", "cannot open (No such file or directory)",
         [](const fs::path& p) { fs::create_symlink(p.parent_path() / "nowhere.jpg", p); }},
        {"a directory", "dir.png", "not a regular file",
         [](const fs::path& p) { fs::create_directories(p); }},
    };
    for (const Case& k : cases) {
        BOOST_TEST_CONTEXT(k.name) {
            BadTree t("if-scan", k.file, k.make);
            const std::string path = (t.dir / "train" / "a" / k.file).string();
            BOOST_CHECK_EXCEPTION(loadImageFolder(t.dir.string(), policy(BadImages::Fail)),
                                  std::runtime_error, messageContains(path + ": " + k.message));
            Warnings w;
            const DataSplit s = loadImageFolder(t.dir.string(), policy(BadImages::Skip));
            BOOST_TEST(s.train.count == 6);
            BOOST_TEST(w.any("skipped 1 bad file(s) (--bad-images skip): a/" + k.file + ": " + k.message));
        }
    }
    // an unreadable file (not for root, who reads anything)
    if (geteuid() != 0) {
        BadTree t("if-perm", "locked.png", [](const fs::path& p) {
            writePng(p, randomImage(6, 6, 3));
            fs::permissions(p, fs::perms::none);
        });
        BOOST_CHECK_EXCEPTION(loadImageFolder(t.dir.string(), policy(BadImages::Fail)),
                              std::runtime_error, messageContains("locked.png: cannot open (Permission denied)"));
        Warnings w;
        BOOST_TEST(loadImageFolder(t.dir.string(), policy(BadImages::Skip)).train.count == 6);
    }
}

BOOST_AUTO_TEST_CASE(files_that_fail_to_decode_at_read_time) {
    struct Case {
        std::string name, file, message;
        std::function<void(const fs::path&)> make;
    };
    const std::vector<Case> cases{
        {"corrupt JPEG", "bad.jpg", "corrupt JPEG (",
         [](const fs::path& p) { writeText(p, std::string("\xFF\xD8\xFF\xE0") + std::string(200, 'x')); }},
        {"truncated JPEG", "cut.jpg", "corrupt JPEG (",
         [](const fs::path& p) {
             writeJpeg(p, smoothImage(6, 6));
             fs::resize_file(p, 30);
         }},
        {"corrupt PNG", "bad.png", "corrupt PNG (libpng: ",
         [](const fs::path& p) { writeText(p, std::string("\x89PNG\r\n\x1a\n", 8) + std::string(50, '\x01')); }},
    };
    for (const Case& k : cases) {
        BOOST_TEST_CONTEXT(k.name) {
            BadTree t("if-read", k.file, k.make);
            const std::string path = (t.dir / "train" / "a" / k.file).string();
            const DataSplit f = loadImageFolder(t.dir.string(), policy(BadImages::Fail));
            BOOST_REQUIRE(f.train.count == 7);  // it passed the scan
            const Index bad = indexOf(f.train, "a/" + k.file);
            std::mt19937_64 rng(1);
            std::vector<float> out(static_cast<size_t>(f.train.imageSize()));
            BOOST_CHECK_EXCEPTION(f.train.source->read({bad}, out.data(), &rng), std::runtime_error,
                                  messageContains(path + ": " + k.message));
            // the whole batch fails, naming the file, on any thread count
            ImageFolderOptions two = policy(BadImages::Fail);
            two.threads = 2;
            const DataSplit f2 = loadImageFolder(t.dir.string(), two);
            BOOST_CHECK_EXCEPTION(readAll(f2.train), std::runtime_error, messageContains(path));

            Warnings w;
            const DataSplit s = loadImageFolder(t.dir.string(), policy(BadImages::Skip));
            const Index sbad = indexOf(s.train, "a/" + k.file);
            // replaced by the next good image of its class (the files of class a in name order)
            const auto& files = sourceOf(s.train).files();
            std::vector<Index> classA;
            for (size_t i = 0; i < files.size(); ++i)
                if (files[i].label == 0) classA.push_back(Index(i));
            const auto at = std::find(classA.begin(), classA.end(), sbad) - classA.begin();
            const Index next = classA[size_t(at + 1) % classA.size()];
            const std::vector<float> got = readAll(s.train, nullptr, {sbad, sbad});
            const std::vector<float> want = readAll(s.train, nullptr, {next});
            BOOST_TEST(std::equal(want.begin(), want.end(), got.begin()));
            BOOST_TEST(w.any(path + ": " + k.message));
            const ImageFolderReport r = sourceOf(s.train).report();
            BOOST_TEST(r.badSkipped == 1);  // counted once
            BOOST_REQUIRE(r.badExamples.size() == 1u);
            BOOST_TEST(r.badExamples[0].find("a/" + k.file) == 0u);
            BOOST_TEST(imageFolderSummary(s).find("1 bad image(s) skipped") != std::string::npos);
        }
    }
    // a class whose every image is bad cannot be read even when skipping
    const fs::path d = tree("if-allbad", {"a"});
    writeText(d / "train" / "a" / "x.png", std::string("\x89PNG\r\n\x1a\n", 8) + "junk");
    writePng(d / "val" / "a" / "v.png", randomImage(4, 4, 1));
    Warnings w;
    const DataSplit s = loadImageFolder(d.string(), policy(BadImages::Skip));
    BOOST_CHECK_EXCEPTION(readAll(s.train), std::runtime_error,
                          messageContains("no image of class a can be decoded (1 file(s), all bad)"));
}

BOOST_AUTO_TEST_CASE(empty_class_folders) {
    const fs::path d = tree("if-empty", {"a", "b", "c"});
    writePng(d / "train" / "a" / "1.png", randomImage(6, 6, 1));
    writePng(d / "train" / "c" / "1.png", randomImage(6, 6, 2));
    writePng(d / "val" / "a" / "1.png", randomImage(6, 6, 3));
    writePng(d / "val" / "c" / "1.png", randomImage(6, 6, 3));
    BOOST_CHECK_EXCEPTION(loadImageFolder(d.string(), policy(BadImages::Fail)), std::runtime_error,
                          messageContains((d / "train" / "b").string() + ": empty class folder"));
    Warnings w;
    const DataSplit s = loadImageFolder(d.string(), policy(BadImages::Skip));
    BOOST_TEST(s.train.numClasses == 3);  // b keeps its label, without images
    BOOST_TEST(s.train.labels == (std::vector<std::int32_t>{0, 2}));
    BOOST_TEST(w.any((d / "train" / "b").string() + ": empty class folder"));
    BOOST_TEST(w.any((d / "val" / "b").string() + ": empty class folder"));
}

BOOST_AUTO_TEST_CASE(grayscale_images_among_color_ones_become_rgb_and_are_counted) {
    const fs::path d = tree("if-gray", {"a"});
    const Image g = randomImage(6, 6, 9, 1), gs = smoothImage(6, 6);
    Image gj{6, 6, 1, {}};
    for (int i = 0; i < 36; ++i) gj.px.push_back(gs.px[size_t(3 * i)]);
    writePng(d / "train" / "a" / "color.png", randomImage(6, 6, 1));
    writePng(d / "train" / "a" / "gray.png", g);
    writeJpeg(d / "train" / "a" / "gray.jpg", gj);
    writePng(d / "val" / "a" / "v.png", randomImage(6, 6, 2));
    for (BadImages b : {BadImages::Fail, BadImages::Skip}) {
        const DataSplit s = loadImageFolder(d.string(), policy(b));
        const std::vector<float> out = readAll(s.train);
        const Index png = indexOf(s.train, "a/gray.png"), jpg = indexOf(s.train, "a/gray.jpg");
        for (int y = 0; y < 6; ++y)
            for (int x = 0; x < 6; ++x)
                for (int c = 0; c < 3; ++c) {
                    BOOST_TEST(out[size_t(png * 108 + (c * 6 + y) * 6 + x)] * 255.0f == float(g.at(x, y, 0)),
                               boost::test_tools::tolerance(1e-3f));
                    BOOST_TEST(std::abs(out[size_t(jpg * 108 + (c * 6 + y) * 6 + x)] * 255.0f -
                                        float(gj.at(x, y, 0))) <= 3.0f);
                }
        readAll(s.train);  // counted once per file
        const ImageFolderReport r = sourceOf(s.train).report();
        BOOST_TEST(r.grayscale == 2);
        BOOST_TEST(r.badSkipped == 0);
        const std::string summary = imageFolderSummary(s);
        BOOST_TEST(summary.find("2 grayscale image(s) converted to RGB (a/gray.jpg, a/gray.png)") !=
                       std::string::npos, summary);
    }
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(end_to_end)

namespace {

/// 3 classes of 32x32 images: a red, a green, a blue blob on noise, at random places.
void writeSeparable(const fs::path& d, int perClassTrain, int perClassVal) {
    std::mt19937_64 r(11);
    const char* names[3] = {"red", "green", "blue"};
    for (int split = 0; split < 2; ++split)
        for (int c = 0; c < 3; ++c) {
            const fs::path dir = d / (split == 0 ? "train" : "val") / names[c];
            fs::create_directories(dir);
            const int n = split == 0 ? perClassTrain : perClassVal;
            for (int i = 0; i < n; ++i) {
                Image im{32, 32, 3, std::vector<unsigned char>(32 * 32 * 3)};
                const int cx = 8 + int(r() % 16), cy = 8 + int(r() % 16);
                for (int y = 0; y < 32; ++y)
                    for (int x = 0; x < 32; ++x)
                        for (int k = 0; k < 3; ++k) {
                            int v = 60 + int(r() % 60);
                            if (k == c && (x - cx) * (x - cx) + (y - cy) * (y - cy) < 64) v += 120;
                            im.px[size_t((y * 32 + x) * 3 + k)] = static_cast<unsigned char>(std::min(v, 255));
                        }
                const fs::path file = dir / (std::to_string(i) + (i % 2 ? ".png" : ".jpg"));
                if (i % 2) writePng(file, im);
                else writeJpeg(file, im, 90);
            }
        }
}

}  // namespace

BOOST_AUTO_TEST_CASE(trains_on_a_folder_and_exports) {
    const fs::path d = tern::testing::tempDir("if-e2e");
    writeSeparable(d / "data", 60, 20);
    run::TrainConfig c;
    c.dataset = "folder";
    c.dataDir = (d / "data").string();
    c.folder.imageSize = 32;
    c.folder.minScale = 0.5;
    c.model = "tiny";
    c.method = "twn";
    c.epochs = 4;
    c.batchSize = 20;
    c.lr = 0.05;
    c.threads = 1;
    c.folder.threads = 2;
    c.evalBatch = 30;
    c.outDir = (d / "run").string();
    const run::TrainResult r = run::train(c, nullptr);
    BOOST_TEST(r.status == "completed");
    BOOST_TEST(r.finalTestAcc > 0.8, "accuracy " << r.finalTestAcc << " (chance 1/3)");
    // the checkpoint records the folder's options and normalization
    io::CheckpointReader ck((d / "run" / "checkpoint.h5").string());
    BOOST_TEST(ck.attrString("config", "image-size") == "32");
    BOOST_TEST(ck.attrString("config", "crop-scale") == "0.5,1");
    BOOST_TEST(ck.attrString("config", "loader-threads") == "2");
    // exported, the model gives the trained accuracy on the val images
    deploy::TernaryModel m = deploy::TernaryModel::fromCheckpoint((d / "run" / "checkpoint.h5").string());
    BOOST_TEST(m.input() == (std::vector<Index>{3, 32, 32}));
    BOOST_TEST(m.mean() == c.folder.mean);
    ImageFolderOptions eval = c.folder;
    if (m.folding().rawInput) {
        eval.mean = {0, 0, 0};
        eval.stddev = {1, 1, 1};
    }
    const DataSplit s = loadImageFolder(c.dataDir, eval);
    const double exported = m.accuracy(s.test, 30);
    BOOST_TEST(std::abs(exported - r.finalTestAcc) <= 0.02,
               "exported " << exported << ", trained " << r.finalTestAcc);
#ifdef TERN_EVAL_EXE
    // tern-eval on the checkpoint prints the same accuracy
    const std::string cmd = std::string(TERN_EVAL_EXE) + " --checkpoint " + (d / "run").string() +
                            "/checkpoint.h5 --data-dir " + c.dataDir + " --threads 1 > " +
                            (d / "eval.txt").string() + " 2>&1";
    BOOST_REQUIRE_MESSAGE(std::system(cmd.c_str()) == 0, cmd);
    std::ifstream f(d / "eval.txt");
    std::string word;
    double acc = -1;
    f >> word >> acc;
    BOOST_TEST(word == "accuracy");
    BOOST_TEST(std::abs(acc - 100 * r.finalTestAcc) <= 2.0,
               "tern-eval " << acc << "%, trained " << 100 * r.finalTestAcc << "%");
#endif
}

BOOST_AUTO_TEST_SUITE_END()

#endif  // TERN_HAVE_IMAGE_FOLDER
