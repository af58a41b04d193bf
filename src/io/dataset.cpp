// Dataset readers: MNIST / Fashion-MNIST (IDX, raw or gzipped), CIFAR-10 (binary batches),
// normalization and minibatch gathering with pad-crop-flip augmentation.
#include "tern/io/dataset.hpp"

#include "tern/core/error.hpp"
#include "tern/io/image_folder.hpp"

#include <zlib.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <climits>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <stdexcept>

namespace tern::io {

namespace {

namespace fs = std::filesystem;

constexpr std::uint32_t kIdxImageMagic = 2051;  // 0x00000803: unsigned byte, 3 dims
constexpr std::uint32_t kIdxLabelMagic = 2049;  // 0x00000801: unsigned byte, 1 dim
constexpr std::size_t kIdxImageHeader = 16;
constexpr std::size_t kIdxLabelHeader = 8;
constexpr Index kCifarSide = 32;
constexpr Index kCifarChannels = 3;
constexpr std::size_t kCifarPixels = kCifarChannels * kCifarSide * kCifarSide;  // 3072
constexpr std::size_t kCifarRecord = 1 + kCifarPixels;                          // 3073
constexpr int kNumClasses = 10;
constexpr Index kPad = 4;  // augmentation: zero padding on each side; crop offsets in [0, 2*kPad]

[[noreturn]] void ioError(const char* where, const std::string& what) {
    throw std::runtime_error(std::string(where) + ": " + what);
}

/// The bytes of one file and the path they were actually read from.
struct FileBytes {
    std::string path;
    std::vector<std::uint8_t> bytes;
};

std::vector<std::uint8_t> readRaw(const std::string& path, const char* where) {
    std::unique_ptr<std::FILE, int (*)(std::FILE*)> f(std::fopen(path.c_str(), "rb"), &std::fclose);
    if (!f) ioError(where, TERN_MSG(path << ": cannot open (" << std::strerror(errno) << ")"));
    std::error_code ec;
    const auto size = fs::file_size(path, ec);
    if (ec) ioError(where, TERN_MSG(path << ": cannot read size (" << ec.message() << ")"));
    std::vector<std::uint8_t> bytes(size);
    if (size > 0 && std::fread(bytes.data(), 1, size, f.get()) != size)
        ioError(where, TERN_MSG(path << ": read error (" << std::strerror(errno) << ")"));
    return bytes;
}

/// Decompresses the gzip file `path` (one or more members, as gzip writes them). Like gzip
/// and gzread, a file that does not start with the gzip magic is taken as it is, and bytes
/// after the last member that do not start another member are ignored. A corrupt or truncated
/// stream is reported with where it failed: the compressed byte offset and the number of bytes
/// decompressed by then.
std::vector<std::uint8_t> readGz(const std::string& path, const char* where) {
    const std::vector<std::uint8_t> in = readRaw(path, where);
    auto isMember = [&](std::size_t at) {
        return in.size() - at >= 2 && in[at] == 0x1f && in[at + 1] == 0x8b;
    };
    if (!isMember(0)) return in;  // not gzipped: read as it is (gzread's transparent mode)
    z_stream z{};
    if (inflateInit2(&z, 15 + 16) != Z_OK)  // gzip wrapper only
        ioError(where, TERN_MSG(path << ": cannot start zlib (" << (z.msg ? z.msg : "") << ")"));
    const std::unique_ptr<z_stream, int (*)(z_stream*)> guard(&z, &inflateEnd);
    std::vector<std::uint8_t> out;
    // The last 4 bytes of a one-member file are its size mod 2^32: a first guess, capped.
    std::size_t guess = in.size() >= 4 ? (std::size_t(in[in.size() - 1]) << 24 |
                                          std::size_t(in[in.size() - 2]) << 16 |
                                          std::size_t(in[in.size() - 3]) << 8 | in[in.size() - 4])
                                       : 0;
    guess = std::min(guess, in.size() * 1032);  // deflate's largest ratio
    out.resize(std::clamp<std::size_t>(guess, std::size_t{1} << 16, std::size_t{1} << 28));
    std::size_t member = 0;  // compressed offset where the current member starts
    std::size_t produced = 0;
    z.next_in = const_cast<Bytef*>(in.data());
    std::size_t inLeft = in.size();
    for (;;) {
        if (produced == out.size()) out.resize(out.size() * 2);
        const uInt inChunk = static_cast<uInt>(std::min<std::size_t>(inLeft, 1u << 30));
        const uInt outChunk =
            static_cast<uInt>(std::min<std::size_t>(out.size() - produced, 1u << 30));
        z.avail_in = inChunk;
        z.next_out = out.data() + produced;
        z.avail_out = outChunk;
        const int rc = inflate(&z, Z_NO_FLUSH);
        inLeft -= inChunk - z.avail_in;
        produced += outChunk - z.avail_out;
        const std::size_t at = in.size() - inLeft;  // compressed bytes consumed so far
        if (rc == Z_STREAM_END) {
            if (!isMember(at)) break;  // the end, or trailing bytes (ignored, as gzip does)
            member = at;
            inflateReset(&z);
            continue;
        }
        if (rc == Z_OK || (rc == Z_BUF_ERROR && z.avail_out == 0)) continue;  // more room
        if (rc == Z_BUF_ERROR && inLeft == 0)
            ioError(where, TERN_MSG(path << ": truncated gzip stream: it ends after " << in.size()
                                         << " compressed bytes (" << produced
                                         << " bytes decompressed)"
                                         << (member > 0 ? TERN_MSG(", in the gzip member that "
                                                                   "starts at byte "
                                                                   << member)
                                                        : std::string())));
        ioError(where, TERN_MSG(path << ": corrupt gzip stream at compressed byte " << at << " of "
                                     << in.size() << " (after " << produced
                                     << " bytes decompressed; zlib: "
                                     << (z.msg ? z.msg : zError(rc)) << ")"));
    }
    out.resize(produced);
    return out;
}

/// Reads `path`, or else `path.gz` through zlib; throws naming both when neither exists.
FileBytes readMaybeGz(const std::string& path, const char* where) {
    if (fs::exists(path)) {
        if (!fs::is_regular_file(path)) ioError(where, path + ": not a regular file");
        return {path, readRaw(path, where)};
    }
    const std::string gz = path + ".gz";
    if (fs::exists(gz)) {
        if (!fs::is_regular_file(gz)) ioError(where, gz + ": not a regular file");
        return {gz, readGz(gz, where)};
    }
    ioError(where, TERN_MSG(path << " missing (also tried " << gz << ")"));
}

std::uint32_t bigEndian32(const std::uint8_t* p) {
    return (std::uint32_t(p[0]) << 24) | (std::uint32_t(p[1]) << 16) | (std::uint32_t(p[2]) << 8) |
           std::uint32_t(p[3]);
}

/// byte / 255 for every byte value.
const std::array<float, 256>& byteScale() {
    static const std::array<float, 256> table = [] {
        std::array<float, 256> t{};
        for (int i = 0; i < 256; ++i) t[static_cast<std::size_t>(i)] = static_cast<float>(i) / 255.0f;
        return t;
    }();
    return table;
}

void scaleBytes(const std::uint8_t* src, std::size_t n, float* dst) {
    const auto& t = byteScale();
    for (std::size_t i = 0; i < n; ++i) dst[i] = t[src[i]];
}

void checkSize(const FileBytes& f, std::size_t expected, const char* where, const char* what) {
    if (f.bytes.size() < expected)
        ioError(where, TERN_MSG(f.path << ": truncated: expected " << expected << " bytes, got "
                                       << f.bytes.size() << " (" << what << ")"));
    if (f.bytes.size() > expected)
        ioError(where, TERN_MSG(f.path << ": " << f.bytes.size() << " bytes, expected " << expected
                                       << " (" << what << "): trailing data"));
}

std::string idxPrefix(const std::string& split, const char* where) {
    if (split == "train") return "train";
    if (split == "test") return "t10k";
    throw std::invalid_argument(std::string(where) + ": unknown split '" + split +
                                "'; known: train, test");
}

void checkLimit(Index limit, const char* where, const char* field) {
    if (limit < 0)
        throw std::invalid_argument(TERN_MSG(where << ": " << field << " must be >= 0 (got " << limit
                                                   << ")"));
}

/// readIdx, converting only the first `limit` images (0 = all); headers, sizes and every label
/// are still checked.
Dataset readIdxLimited(const std::string& dir, const std::string& split, const std::string& name,
                       Index limit) {
    const char* where = "readIdx()";
    const std::string prefix = idxPrefix(split, where);
    const FileBytes img =
        readMaybeGz((fs::path(dir) / (prefix + "-images-idx3-ubyte")).string(), where);
    const FileBytes lab =
        readMaybeGz((fs::path(dir) / (prefix + "-labels-idx1-ubyte")).string(), where);

    // Image file: magic, count, rows, cols (big-endian u32), then count*rows*cols bytes.
    // The magic number first: a wrong kind of file says so even when it is short.
    if (img.bytes.size() >= 4) {
        const std::uint32_t magic = bigEndian32(img.bytes.data());
        if (magic != kIdxImageMagic)
            ioError(where, TERN_MSG(img.path << ": bad magic number " << magic << " (expected "
                                             << kIdxImageMagic << " for an IDX image file)"));
    }
    if (img.bytes.size() < kIdxImageHeader)
        ioError(where, TERN_MSG(img.path << ": truncated: expected at least " << kIdxImageHeader
                                         << " bytes (IDX image header), got " << img.bytes.size()));
    const std::uint32_t count = bigEndian32(img.bytes.data() + 4);
    const std::uint32_t rows = bigEndian32(img.bytes.data() + 8);
    const std::uint32_t cols = bigEndian32(img.bytes.data() + 12);
    if (rows == 0 || cols == 0 || rows > 65535 || cols > 65535)
        ioError(where, TERN_MSG(img.path << ": bad image size " << rows << "x" << cols
                                         << " in the header"));
    const std::size_t pixels = std::size_t(rows) * cols;
    checkSize(img, kIdxImageHeader + std::size_t(count) * pixels, where,
              TERN_MSG(count << " images of " << rows << "x" << cols).c_str());

    // Label file: magic, count, then count bytes.
    // The magic number first: a wrong kind of file says so even when it is short.
    if (lab.bytes.size() >= 4) {
        const std::uint32_t magic = bigEndian32(lab.bytes.data());
        if (magic != kIdxLabelMagic)
            ioError(where, TERN_MSG(lab.path << ": bad magic number " << magic << " (expected "
                                             << kIdxLabelMagic << " for an IDX label file)"));
    }
    if (lab.bytes.size() < kIdxLabelHeader)
        ioError(where, TERN_MSG(lab.path << ": truncated: expected at least " << kIdxLabelHeader
                                         << " bytes (IDX label header), got " << lab.bytes.size()));
    const std::uint32_t labCount = bigEndian32(lab.bytes.data() + 4);
    checkSize(lab, kIdxLabelHeader + labCount, where, TERN_MSG(labCount << " labels").c_str());
    if (labCount != count)
        ioError(where, TERN_MSG(img.path << " has " << count << " images but " << lab.path
                                         << " has " << labCount << " labels"));
    const std::uint8_t* labels = lab.bytes.data() + kIdxLabelHeader;
    for (std::uint32_t i = 0; i < count; ++i)
        if (labels[i] >= kNumClasses)
            ioError(where, TERN_MSG(lab.path << ": label " << int(labels[i]) << " at index " << i
                                             << " out of range [0, " << kNumClasses << ")"));

    Dataset d;
    d.name = name + "/" + split;
    d.count = (limit > 0) ? std::min<Index>(limit, count) : Index(count);
    d.channels = 1;
    d.height = rows;
    d.width = cols;
    d.numClasses = kNumClasses;
    d.images.resize(static_cast<std::size_t>(d.count) * pixels);
    scaleBytes(img.bytes.data() + kIdxImageHeader, d.images.size(), d.images.data());
    d.labels.assign(labels, labels + d.count);
    return d;
}

/// readCifar10, converting only the first `limit` images (0 = all).
Dataset readCifar10Limited(const std::string& dir, const std::string& split, Index limit) {
    const char* where = "readCifar10()";
    std::vector<std::string> names;
    if (split == "train") {
        for (int b = 1; b <= 5; ++b) names.push_back("data_batch_" + std::to_string(b) + ".bin");
    } else if (split == "test") {
        names.push_back("test_batch.bin");
    } else {
        throw std::invalid_argument(std::string(where) + ": unknown split '" + split +
                                    "'; known: train, test");
    }
    // Check every file is there before reading any.
    for (const auto& n : names) {
        const std::string path = (fs::path(dir) / n).string();
        if (!fs::exists(path))
            ioError(where, TERN_MSG(path << " missing (CIFAR-10 " << split << " needs "
                                         << (split == "train" ? "data_batch_1.bin .. data_batch_5.bin"
                                                              : "test_batch.bin")
                                         << " in " << dir << ")"));
    }

    Dataset d;
    d.name = "cifar10/" + split;
    d.channels = kCifarChannels;
    d.height = kCifarSide;
    d.width = kCifarSide;
    d.numClasses = kNumClasses;
    for (const auto& n : names) {
        const std::string path = (fs::path(dir) / n).string();
        if (!fs::is_regular_file(path)) ioError(where, path + ": not a regular file");
        const std::vector<std::uint8_t> bytes = readRaw(path, where);
        if (bytes.empty() || bytes.size() % kCifarRecord != 0)
            ioError(where, TERN_MSG(path << ": size " << bytes.size()
                                         << " bytes is not a positive multiple of " << kCifarRecord
                                         << " (1 label byte + 3072 pixel bytes per image)"));
        const std::size_t records = bytes.size() / kCifarRecord;
        for (std::size_t r = 0; r < records; ++r)
            if (bytes[r * kCifarRecord] >= kNumClasses)
                ioError(where, TERN_MSG(path << ": label " << int(bytes[r * kCifarRecord])
                                             << " in record " << r << " out of range [0, "
                                             << kNumClasses << ")"));
        std::size_t keep = records;
        if (limit > 0) keep = std::min<std::size_t>(records, std::size_t(std::max<Index>(limit - d.count, 0)));
        const std::size_t base = d.images.size();
        d.images.resize(base + keep * kCifarPixels);
        for (std::size_t r = 0; r < keep; ++r) {
            const std::uint8_t* rec = bytes.data() + r * kCifarRecord;
            d.labels.push_back(rec[0]);
            // R, G, B planes of 32x32, row-major: already CHW.
            scaleBytes(rec + 1, kCifarPixels, d.images.data() + base + r * kCifarPixels);
        }
        d.count += static_cast<Index>(keep);
    }
    return d;
}

}  // namespace

std::vector<std::string> datasetNames() { return {"mnist", "fashion-mnist", "cifar10", "folder"}; }

Dataset readIdx(const std::string& dir, const std::string& split, const std::string& name) {
    return readIdxLimited(dir, split, name, 0);
}

Dataset readCifar10(const std::string& dir, const std::string& split) {
    return readCifar10Limited(dir, split, 0);
}

DataSplit loadDataset(const std::string& name, const std::string& dir, Index trainLimit,
                      Index testLimit) {
    return loadDataset(name, dir, trainLimit, testLimit, ImageFolderOptions{});
}

DataSplit loadDataset(const std::string& name, const std::string& dir, Index trainLimit,
                      Index testLimit, const ImageFolderOptions& folder) {
    const char* where = "loadDataset()";
    const auto known = datasetNames();
    if (std::find(known.begin(), known.end(), name) == known.end()) {
        std::string list;
        for (const auto& k : known) list += (list.empty() ? "" : ", ") + k;
        throw std::invalid_argument(std::string(where) + ": unknown dataset '" + name +
                                    "'; known: " + list);
    }
    checkLimit(trainLimit, where, "trainLimit");
    checkLimit(testLimit, where, "testLimit");

    if (name == "folder") return loadImageFolder(dir, folder, trainLimit, testLimit);
    DataSplit s;
    if (name == "cifar10") {
        s.train = readCifar10Limited(dir, "train", trainLimit);
        s.test = readCifar10Limited(dir, "test", testLimit);
        s.train.augment = true;
    } else {
        s.train = readIdxLimited(dir, "train", name, trainLimit);
        s.test = readIdxLimited(dir, "test", name, testLimit);
    }
    channelStats(s.train, s.mean, s.stddev);
    normalize(s.train, s.mean, s.stddev);
    normalize(s.test, s.mean, s.stddev);
    return s;
}

void channelStats(const Dataset& d, std::vector<float>& mean, std::vector<float>& stddev) {
    const char* where = "channelStats()";
    if (d.count <= 0 || d.channels <= 0 || d.imageSize() <= 0)
        throw std::invalid_argument(TERN_MSG(where << ": dataset '" << d.name << "' is empty"));
    if (d.images.size() != static_cast<std::size_t>(d.count * d.imageSize()))
        throw std::invalid_argument(TERN_MSG(where << ": dataset '" << d.name << "' has "
                                                   << d.images.size() << " values, expected "
                                                   << d.count * d.imageSize()));
    const Index plane = d.height * d.width;
    const auto C = static_cast<std::size_t>(d.channels);
    std::vector<double> sum(C, 0.0), sq(C, 0.0);
    // Two passes (mean, then squared deviations), each plane summed in float then added in
    // double: accurate and fast.
    for (Index i = 0; i < d.count; ++i)
        for (Index c = 0; c < d.channels; ++c) {
            const float* p = d.image(i) + c * plane;
            double s = 0;
            for (Index k = 0; k < plane; ++k) s += p[k];
            sum[static_cast<std::size_t>(c)] += s;
        }
    const double n = double(d.count) * double(plane);
    mean.assign(C, 0.0f);
    for (std::size_t c = 0; c < C; ++c) mean[c] = static_cast<float>(sum[c] / n);
    for (Index i = 0; i < d.count; ++i)
        for (Index c = 0; c < d.channels; ++c) {
            const float* p = d.image(i) + c * plane;
            const double m = sum[static_cast<std::size_t>(c)] / n;
            double s = 0;
            for (Index k = 0; k < plane; ++k) s += (p[k] - m) * (p[k] - m);
            sq[static_cast<std::size_t>(c)] += s;
        }
    stddev.assign(C, 1.0f);
    // A constant channel keeps stddev 1, so normalize() only centres it.
    for (std::size_t c = 0; c < C; ++c) {
        const double sd = std::sqrt(sq[c] / n);
        stddev[c] = sd > 1e-12 ? static_cast<float>(sd) : 1.0f;
    }
}

void normalize(Dataset& d, const std::vector<float>& mean, const std::vector<float>& stddev) {
    const char* where = "normalize()";
    const auto C = static_cast<std::size_t>(d.channels);
    if (mean.size() != C || stddev.size() != C)
        throw std::invalid_argument(TERN_MSG(where << ": dataset '" << d.name << "' has " << C
                                                   << " channels, got " << mean.size()
                                                   << " means and " << stddev.size()
                                                   << " stddevs"));
    for (std::size_t c = 0; c < C; ++c)
        if (!(stddev[c] > 0) || !std::isfinite(stddev[c]) || !std::isfinite(mean[c]))
            throw std::invalid_argument(TERN_MSG(where << ": stddev[" << c
                                                       << "] must be finite and > 0 (got "
                                                       << stddev[c] << ", mean " << mean[c]
                                                       << ")"));
    const Index plane = d.height * d.width;
    for (Index i = 0; i < d.count; ++i)
        for (Index c = 0; c < d.channels; ++c) {
            float* p = d.images.data() + i * d.imageSize() + c * plane;
            const float m = mean[static_cast<std::size_t>(c)];
            const float inv = 1.0f / stddev[static_cast<std::size_t>(c)];
            for (Index k = 0; k < plane; ++k) p[k] = (p[k] - m) * inv;
        }
}

void gatherBatch(const Dataset& d, const std::vector<Index>& indices, float* dst,
                 std::int32_t* labels, std::mt19937_64* rng) {
    const char* where = "gatherBatch()";
    if (indices.empty()) return;
    if (dst == nullptr) throw std::invalid_argument(std::string(where) + ": dst is null");
    for (const Index i : indices)
        if (i < 0 || i >= d.count)
            throw std::out_of_range(TERN_MSG(where << ": index " << i << " out of range for '"
                                                   << d.name << "' with " << d.count
                                                   << " images"));
    const Index size = d.imageSize();
    const auto bytes = static_cast<std::size_t>(size) * sizeof(float);
    if (labels != nullptr)
        for (std::size_t b = 0; b < indices.size(); ++b)
            labels[b] = d.labels[static_cast<std::size_t>(indices[b])];

    if (d.source) {
        d.source->read(indices, dst, d.augment ? rng : nullptr);
        return;
    }
    if (!d.augment || rng == nullptr) {
        for (std::size_t b = 0; b < indices.size(); ++b)
            std::memcpy(dst + Index(b) * size, d.image(indices[b]), bytes);
        return;
    }

    // Pad kPad zeros on each side, crop HxW at offset (dy, dx) in [0, 2*kPad]^2, flip with p=1/2:
    //   out(c, y, x) = in(c, y + dy - kPad, x' + dx - kPad),  x' = flip ? W-1-x : x,
    // zero where the source lies outside the image. One 64-bit draw per image gives dy, dx
    // and the flip bit (bias of 2^64 mod 9 is negligible); the same stream on every platform.
    const Index H = d.height, W = d.width, span = 2 * kPad + 1;
    for (std::size_t b = 0; b < indices.size(); ++b) {
        const std::uint64_t r = (*rng)();
        const Index dy = Index(r % std::uint64_t(span)) - kPad;  // source row = y + dy
        const Index dx = Index((r / std::uint64_t(span)) % std::uint64_t(span)) - kPad;
        const bool flip = ((r / std::uint64_t(span * span)) & 1u) != 0;
        // Output columns [x0, x1) read source columns x + dx (before the flip).
        const Index x0 = std::max<Index>(0, -dx), x1 = std::min<Index>(W, W - dx);
        const float* src = d.image(indices[b]);
        float* out = dst + Index(b) * size;
        for (Index c = 0; c < d.channels; ++c) {
            const float* srcPlane = src + c * H * W;
            float* outPlane = out + c * H * W;
            for (Index y = 0; y < H; ++y) {
                float* row = outPlane + y * W;
                const Index sy = y + dy;
                if (sy < 0 || sy >= H || x1 <= x0) {
                    std::fill(row, row + W, 0.0f);
                    continue;
                }
                const float* srcRow = srcPlane + sy * W;
                if (!flip) {
                    std::fill(row, row + x0, 0.0f);
                    std::memcpy(row + x0, srcRow + x0 + dx, std::size_t(x1 - x0) * sizeof(float));
                    std::fill(row + x1, row + W, 0.0f);
                } else {
                    // Unflipped column x lands at W-1-x.
                    std::fill(row + (W - x0), row + W, 0.0f);
                    for (Index x = x0; x < x1; ++x) row[W - 1 - x] = srcRow[x + dx];
                    std::fill(row, row + (W - x1), 0.0f);
                }
            }
        }
    }
}

void readImages(const Dataset& d, Index start, Index n, float* dst) {
    if (n <= 0) return;
    if (start < 0 || start + n > d.count)
        throw std::out_of_range(TERN_MSG("readImages(): images [" << start << ", " << start + n
                                                                  << ") out of range for '"
                                                                  << d.name << "' with " << d.count
                                                                  << " images"));
    if (d.source) {
        std::vector<Index> idx(static_cast<std::size_t>(n));
        for (Index i = 0; i < n; ++i) idx[static_cast<std::size_t>(i)] = start + i;
        d.source->read(idx, dst, nullptr);
        return;
    }
    std::memcpy(dst, d.image(start), static_cast<std::size_t>(n * d.imageSize()) * sizeof(float));
}

}  // namespace tern::io
