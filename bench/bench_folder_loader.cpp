// tern-bench-folder-loader: images per second of the image-folder loader (io::ImageFolderSource)
// on 1 and 2 threads. It writes --images JPEGs of --width x --height (ImageNet's typical
// 500x375; quality 90, 4:2:0 as most photos) into a temp dir, then times reading them in
// batches of --batch as training does (random resized crop + flip to --size, normalization)
// and as evaluation does (resize + center crop). Reports the median over --runs passes.
// Machine-readable lines: RESULT mode=... threads=... size=... img_s=...
#include "tern/io/image_folder.hpp"

#include <boost/program_options.hpp>
#include <turbojpeg.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <random>
#include <string>
#include <vector>

#include <unistd.h>

namespace po = boost::program_options;
namespace fs = std::filesystem;
using tern::Index;

namespace {

/// A photo-like image: low-frequency color fields plus pixel noise.
std::vector<unsigned char> photo(int w, int h, std::mt19937_64& r) {
    std::vector<unsigned char> px(static_cast<size_t>(w * h * 3));
    const double fx = 2 + double(r() % 5), fy = 1 + double(r() % 4), ph = double(r() % 628) / 100;
    for (int y = 0; y < h; ++y)
        for (int x = 0; x < w; ++x)
            for (int c = 0; c < 3; ++c) {
                const double v = 128 + 80 * std::sin(fx * x / w * 6.28 + ph + c) *
                                           std::cos(fy * y / h * 6.28 + c * 0.5) +
                                 double(int(r() % 41) - 20);
                px[size_t((y * w + x) * 3 + c)] =
                    static_cast<unsigned char>(std::clamp(v, 0.0, 255.0));
            }
    return px;
}

}  // namespace

int main(int argc, char** argv) {
    int images = 128, width = 500, height = 375, runs = 5, batch = 32;
    Index size = 224;
    po::options_description desc("tern-bench-folder-loader: image-folder decoding throughput");
    desc.add_options()("help,h", "this help")
        ("images", po::value(&images)->default_value(images), "JPEGs generated")
        ("width", po::value(&width)->default_value(width), "their width")
        ("height", po::value(&height)->default_value(height), "their height")
        ("size", po::value(&size)->default_value(size), "--image-size")
        ("batch", po::value(&batch)->default_value(batch), "images per read")
        ("runs", po::value(&runs)->default_value(runs), "timed passes (median)");
    po::variables_map vm;
    po::store(po::parse_command_line(argc, argv, desc), vm);
    po::notify(vm);
    if (vm.count("help")) {
        std::cout << desc << '\n';
        return 0;
    }
    if (!tern::io::imageFolderSupported()) {
        std::cerr << "tern-bench-folder-loader: tern was built without image support\n";
        return 1;
    }
    const fs::path dir = fs::temp_directory_path() / ("tern-bench-folder-" + std::to_string(getpid()));
    std::mt19937_64 r(1);
    tjhandle tj = tjInitCompress();
    std::uintmax_t bytes = 0;
    for (const char* split : {"train", "val"})
        for (const char* cls : {"a", "b"}) fs::create_directories(dir / split / cls);
    for (int i = 0; i < images; ++i) {
        const std::vector<unsigned char> px = photo(width, height, r);
        unsigned char* buf = nullptr;
        unsigned long n = 0;
        if (tjCompress2(tj, px.data(), width, 0, height, TJPF_RGB, &buf, &n, TJSAMP_420, 90, 0) != 0) {
            std::cerr << "tjCompress2: " << tjGetErrorStr2(tj) << '\n';
            return 1;
        }
        for (const char* split : {"train", "val"})
            std::ofstream(dir / split / (i % 2 ? "a" : "b") / (std::to_string(i) + ".jpg"),
                          std::ios::binary)
                .write(reinterpret_cast<const char*>(buf), std::streamsize(n));
        bytes += n;
        tjFree(buf);
    }
    tjDestroy(tj);
    std::cout << "images: " << images << " JPEGs of " << width << "x" << height << " (mean "
              << bytes / std::uintmax_t(images) / 1024 << " KiB), read at " << size << "x" << size
              << ", batch " << batch << ", median of " << runs << " passes\n";
    std::cout << "cpu: " << std::flush;
    if (std::system("grep -o 'avx512[a-z_]*\\|avx2' /proc/cpuinfo | sort -u | tr '\\n' ' '; "
                    "grep -m1 'model name' /proc/cpuinfo | cut -d: -f2") != 0)
        std::cout << "?\n";
    for (const char* mode : {"train", "eval"})
        for (int threads : {1, 2}) {
            tern::io::ImageFolderOptions o;
            o.imageSize = size;
            o.threads = threads;
            const tern::io::DataSplit s = tern::io::loadImageFolder(dir.string(), o);
            const tern::io::Dataset& d = std::string(mode) == "train" ? s.train : s.test;
            std::vector<float> out(static_cast<size_t>(batch) * static_cast<size_t>(d.imageSize()));
            std::vector<double> rates;
            std::mt19937_64 rng(7);
            for (int run = 0; run < runs + 1; ++run) {  // the first pass warms the page cache
                const auto t0 = std::chrono::steady_clock::now();
                for (Index start = 0; start < d.count; start += batch) {
                    std::vector<Index> idx;
                    for (Index i = start; i < std::min<Index>(d.count, start + batch); ++i) idx.push_back(i);
                    d.source->read(idx, out.data(), std::string(mode) == "train" ? &rng : nullptr);
                }
                const double sec =
                    std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
                if (run > 0) rates.push_back(double(d.count) / sec);
            }
            std::sort(rates.begin(), rates.end());
            std::cout << "RESULT mode=" << mode << " threads=" << threads << " size=" << size
                      << " img_s=" << rates[rates.size() / 2] << '\n';
        }
    fs::remove_all(dir);
    return 0;
}
