#include "testing/helpers.hpp"

#include "tern/nn/batch_norm.hpp"
#include "tern/nn/network.hpp"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <mutex>
#include <vector>
#include <filesystem>
#include <fstream>
#include <unistd.h>

namespace tern::testing {

namespace {
/// Removes every directory tempDir() made when the test binary exits (set TERN_KEEP_TEST_DIRS
/// to keep them for a post-mortem).
struct TempDirs {
    std::mutex lock;
    std::vector<std::filesystem::path> dirs;
    ~TempDirs() {
        if (std::getenv("TERN_KEEP_TEST_DIRS")) return;
        std::error_code ignored;
        for (const auto& d : dirs) std::filesystem::remove_all(d, ignored);
    }
};
TempDirs& tempDirs() {
    static TempDirs t;
    return t;
}
}  // namespace

std::string tempDir(const std::string& tag) {
    static std::atomic<int> counter{0};
    namespace fs = std::filesystem;
    fs::path p = fs::temp_directory_path() /
                 ("tern-" + tag + "-" + std::to_string(::getpid()) + "-" +
                  std::to_string(counter++));
    fs::remove_all(p);
    fs::create_directories(p);
    TempDirs& t = tempDirs();
    const std::lock_guard<std::mutex> g(t.lock);
    t.dirs.push_back(p);
    return p.string();
}

namespace {

void writeBigEndian(std::ofstream& f, std::uint32_t v) {
    const unsigned char b[4] = {static_cast<unsigned char>(v >> 24), static_cast<unsigned char>(v >> 16),
                                static_cast<unsigned char>(v >> 8), static_cast<unsigned char>(v)};
    f.write(reinterpret_cast<const char*>(b), 4);
}

}  // namespace

void writeBandsIdx(const std::string& dir, const std::string& prefix, int count, int size,
                   std::uint64_t seed) {
    std::mt19937_64 rng(seed);
    std::normal_distribution<float> noise(0, 40);
    std::ofstream img(dir + "/" + prefix + "-images-idx3-ubyte", std::ios::binary);
    std::ofstream lab(dir + "/" + prefix + "-labels-idx1-ubyte", std::ios::binary);
    writeBigEndian(img, 2051);
    writeBigEndian(img, static_cast<std::uint32_t>(count));
    writeBigEndian(img, static_cast<std::uint32_t>(size));
    writeBigEndian(img, static_cast<std::uint32_t>(size));
    writeBigEndian(lab, 2049);
    writeBigEndian(lab, static_cast<std::uint32_t>(count));
    for (int i = 0; i < count; ++i) {
        const int c = static_cast<int>(rng() % 3);
        lab.put(static_cast<char>(c));
        for (int y = 0; y < size; ++y)
            for (int x = 0; x < size; ++x) {
                const float v = ((y * 3 / size) == c ? 190.0f : 60.0f) + noise(rng);
                img.put(static_cast<char>(static_cast<unsigned char>(std::clamp(v, 0.0f, 255.0f))));
            }
    }
}

const std::string& bandsDataDir() {
    static const std::string dir = [] {
        const std::string d = tempDir("bands-data");
        writeBandsIdx(d, "train", 240, 12, 1);
        writeBandsIdx(d, "t10k", 90, 12, 2);
        return d;
    }();
    return dir;
}

namespace {
struct Planted {
    Eigen::MatrixXf A;
    Vector x, b;
};
Planted drawPlanted(Index m, Index n, std::uint64_t seed, float noise) {
    std::mt19937_64 rng(seed);
    std::normal_distribution<float> normal(0, 1);
    std::uniform_int_distribution<int> digit(-1, 1);
    Planted p;
    p.A.resize(m, n);
    for (Index i = 0; i < m; ++i)
        for (Index j = 0; j < n; ++j) p.A(i, j) = normal(rng);
    p.x.resize(n);
    for (Index j = 0; j < n; ++j) p.x[j] = 0.8f * static_cast<float>(digit(rng));
    p.b = p.A * p.x;
    for (Index i = 0; i < m; ++i) p.b[i] += noise * normal(rng);
    return p;
}
}  // namespace

optim::problems::LeastSquares plantedTernaryLsq(Index m, Index n, std::uint64_t seed, float noise,
                                                Index rowsPerBatch) {
    Planted p = drawPlanted(m, n, seed, noise);
    return optim::problems::LeastSquares(p.A, p.b, rowsPerBatch);
}

Vector plantedTernaryCode(Index m, Index n, std::uint64_t seed) {
    return drawPlanted(m, n, seed, 0).x;
}

void randomizeBatchNorm(nn::Network& net, std::mt19937_64& rng) {
    std::uniform_real_distribution<float> u(0.5f, 1.5f), v(-0.3f, 0.3f);
    for (auto& l : net.layers())
        if (auto* bn = dynamic_cast<nn::BatchNorm*>(l.get()))
            for (Index c = 0; c < bn->channels(); ++c) {
                bn->gamma()->value[c] = u(rng);
                bn->beta()->value[c] = v(rng);
                bn->runningMean()[c] = v(rng);
                bn->runningVar()[c] = u(rng);
            }
}


}  // namespace tern::testing
