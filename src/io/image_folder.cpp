// Image-folder datasets: scanning DIR/train and DIR/val, decoding JPEG (libjpeg-turbo's
// TurboJPEG API) and PNG (libpng's simplified API) per batch, random resized crop / center
// crop with antialiased bilinear resampling, flip and normalization (io/image_folder.hpp).
#include "tern/io/image_folder.hpp"

#include "tern/core/error.hpp"
#include "tern/core/format.hpp"
#include "tern/io/integrity.hpp"

#include <omp.h>
#include <sys/stat.h>

#ifdef TERN_HAVE_IMAGE_FOLDER
#include <png.h>
#include <turbojpeg.h>
#endif

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <stdexcept>

namespace tern::io {

namespace {

namespace fs = std::filesystem;

constexpr std::size_t kExamples = 3;     // files named in a warning or summary
constexpr int kCropTries = 10;           // torchvision's RandomResizedCrop
constexpr std::uint64_t kMaxPixels = std::uint64_t{1} << 28;  // refuse larger (corrupt) headers

/// Per-image random numbers from its 64-bit seed (SplitMix64: the same stream everywhere).
struct SplitMix {
    std::uint64_t s;
    std::uint64_t next() {
        std::uint64_t z = (s += 0x9e3779b97f4a7c15ull);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
        return z ^ (z >> 31);
    }
    double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }  // [0, 1)
    double uniform(double lo, double hi) { return lo + (hi - lo) * uniform(); }
    Index upTo(Index n) {  // uniform in [0, n]
        return std::min<Index>(n, static_cast<Index>(uniform() * static_cast<double>(n + 1)));
    }
};

/// FNV-1a, 64 bits.
struct Fnv {
    std::uint64_t h = 0xcbf29ce484222325ull;
    void bytes(const void* p, std::size_t n) {
        const auto* b = static_cast<const unsigned char*>(p);
        for (std::size_t i = 0; i < n; ++i) h = (h ^ b[i]) * 0x100000001b3ull;
    }
    void text(const std::string& s) {
        const std::uint64_t n = s.size();
        bytes(&n, sizeof n);
        bytes(s.data(), s.size());
    }
    void word(std::uint64_t v) { bytes(&v, sizeof v); }
};

std::string lower(std::string s) {
    for (char& ch : s) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    return s;
}

bool hidden(const fs::path& p) {
    const std::string n = p.filename().string();
    return !n.empty() && n[0] == '.';
}

bool imageExtension(const fs::path& p) {
    const std::string e = lower(p.extension().string());
    return e == ".jpg" || e == ".jpeg" || e == ".png";
}

std::string numbers(const std::vector<float>& v) {
    std::string s;
    for (std::size_t i = 0; i < v.size(); ++i) {
        if (i) s += ',';
        s += formatShortest(v[i]);
    }
    return s;
}

std::vector<double> parseNumbers(const std::string& key, const std::string& text) {
    std::vector<double> out;
    std::size_t start = 0;
    while (start <= text.size()) {
        const std::size_t end = std::min(text.find(',', start), text.size());
        const std::string item = text.substr(start, end - start);
        const auto x = parseWholeNumber(item);
        if (!x || !std::isfinite(*x))
            fail("ImageFolderOptions::set()",
                 "--" + key + ": '" + item + "' in '" + text + "' is not a finite number");
        out.push_back(*x);
        start = end + 1;
    }
    return out;
}

/// A file's problem as found by a check or a decoder (the caller adds the path).
struct BadFile : std::runtime_error {
    using std::runtime_error::runtime_error;
};

/// The whole file.
std::vector<unsigned char> readFile(const std::string& path) {
    std::unique_ptr<std::FILE, int (*)(std::FILE*)> f(std::fopen(path.c_str(), "rb"), &std::fclose);
    if (!f) throw BadFile(TERN_MSG("cannot open (" << std::strerror(errno) << ")"));
    struct stat st {};
    if (fstat(fileno(f.get()), &st) != 0 || !S_ISREG(st.st_mode))
        throw BadFile("not a regular file");
    std::vector<unsigned char> bytes(static_cast<std::size_t>(st.st_size));
    if (!bytes.empty() && std::fread(bytes.data(), 1, bytes.size(), f.get()) != bytes.size())
        throw BadFile(TERN_MSG("read error (" << std::strerror(errno) << ")"));
    return bytes;
}

constexpr unsigned char kPngMagic[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};

/// Scan-time check: the file opens, is regular, and starts like a JPEG (FF D8 FF) or a PNG.
/// Fills `f.bytes` and `f.png`.
void checkMagic(const std::string& path, ImageFile& f) {
    std::unique_ptr<std::FILE, int (*)(std::FILE*)> h(std::fopen(path.c_str(), "rb"), &std::fclose);
    if (!h) throw BadFile(TERN_MSG("cannot open (" << std::strerror(errno) << ")"));
    struct stat st {};
    if (fstat(fileno(h.get()), &st) != 0 || !S_ISREG(st.st_mode))
        throw BadFile("not a regular file");
    if (st.st_size == 0) throw BadFile("empty file (0 bytes)");
    unsigned char head[8] = {};
    const std::size_t got = std::fread(head, 1, sizeof head, h.get());
    if (got == 0) throw BadFile(TERN_MSG("read error (" << std::strerror(errno) << ")"));
    f.bytes = static_cast<std::uint64_t>(st.st_size);
    if (got >= 3 && head[0] == 0xFF && head[1] == 0xD8 && head[2] == 0xFF) {
        f.png = false;
        return;
    }
    if (got == 8 && std::memcmp(head, kPngMagic, 8) == 0) {
        f.png = true;
        return;
    }
    char hex[40] = {};
    int at = 0;
    for (std::size_t i = 0; i < std::min<std::size_t>(got, 4); ++i)
        at += std::snprintf(hex + at, sizeof hex - static_cast<std::size_t>(at), "%s%02X",
                            i ? " " : "", head[i]);
    throw BadFile(TERN_MSG("not a JPEG or PNG file (it starts with bytes " << hex << ")"));
}

/// A decoded image: 8-bit RGB, row-major, 3 bytes per pixel.
struct Rgb {
    Index width = 0, height = 0;
    bool grayscale = false;
    std::vector<unsigned char> px;
};

/// Resampling weights along one axis: output o reads source pixels start[o] .. start[o] +
/// count[o] - 1 with weights w[o * maxTaps + k] (summing to 1).
struct Taps {
    std::vector<Index> start, count;
    std::vector<float> w;
    Index maxTaps = 0;
};

/// Antialiased bilinear (a triangle filter widened to the scale when shrinking, as PIL's
/// bilinear resize): the region [origin, origin + length) of a row of `n` source pixels
/// (continuous coordinates; pixel i covers [i, i + 1)) to `out` pixels. Output o is centred at
/// c = origin + (o + 0.5) * scale - 0.5 in pixel-index coordinates, scale = length / out; source
/// pixel j has weight max(0, 1 - |j - c| / support), support = max(scale, 1). Pixels outside
/// the region (and the image) are left out and the weights renormalized.
Taps makeTaps(double origin, double length, Index out, Index n) {
    Taps t;
    const double scale = length / static_cast<double>(out);
    const double support = std::max(scale, 1.0);
    const Index lo = std::max<Index>(0, static_cast<Index>(std::floor(origin)));
    const Index hi = std::min<Index>(n - 1, static_cast<Index>(std::ceil(origin + length)) - 1);
    t.maxTaps = static_cast<Index>(std::ceil(support)) * 2 + 1;
    t.start.resize(static_cast<std::size_t>(out));
    t.count.resize(static_cast<std::size_t>(out));
    t.w.assign(static_cast<std::size_t>(out * t.maxTaps), 0.0f);
    for (Index o = 0; o < out; ++o) {
        const double c = origin + (static_cast<double>(o) + 0.5) * scale - 0.5;
        const Index j0 = std::max(lo, static_cast<Index>(std::ceil(c - support)));
        const Index j1 = std::min(hi, static_cast<Index>(std::floor(c + support)));
        double sum = 0;
        std::vector<double> w;
        for (Index j = j0; j <= j1; ++j) {
            const double wj = std::max(0.0, 1.0 - std::abs(static_cast<double>(j) - c) / support);
            w.push_back(wj);
            sum += wj;
        }
        float* dst = t.w.data() + o * t.maxTaps;
        if (sum <= 0) {  // c lies on the region's edge: its nearest pixel
            t.start[static_cast<std::size_t>(o)] =
                std::clamp<Index>(static_cast<Index>(std::lround(c)), lo, hi);
            t.count[static_cast<std::size_t>(o)] = 1;
            dst[0] = 1.0f;
            continue;
        }
        t.start[static_cast<std::size_t>(o)] = j0;
        t.count[static_cast<std::size_t>(o)] = static_cast<Index>(w.size());
        for (std::size_t k = 0; k < w.size(); ++k) dst[k] = static_cast<float>(w[k] / sum);
    }
    return t;
}

/// The region (x0, y0, w, h) of `img` (continuous coordinates) to size x size, mirrored if
/// `flip`, normalized, into dst (CHW float).
void resampleInto(const Rgb& img, double x0, double y0, double w, double h, Index size, bool flip,
                  const ImageFolderOptions& opt, float* dst) {
    const Taps tx = makeTaps(x0, w, size, img.width);
    const Taps ty = makeTaps(y0, h, size, img.height);
    // the source columns any output reads
    const Index cx0 = tx.start.front(), cx1 = tx.start.back() + tx.count.back();
    const Index cols = cx1 - cx0;
    std::vector<float> row(static_cast<std::size_t>(cols * 3));
    float scale[3], shift[3];
    for (int c = 0; c < 3; ++c) {  // v / 255 - mean) / std = v * scale + shift
        scale[c] = 1.0f / (255.0f * opt.stddev[static_cast<std::size_t>(c)]);
        shift[c] = -opt.mean[static_cast<std::size_t>(c)] / opt.stddev[static_cast<std::size_t>(c)];
    }
    const Index plane = size * size;
    for (Index y = 0; y < size; ++y) {
        // vertical pass: one row of the region's columns
        std::fill(row.begin(), row.end(), 0.0f);
        const Index sy = ty.start[static_cast<std::size_t>(y)];
        for (Index k = 0; k < ty.count[static_cast<std::size_t>(y)]; ++k) {
            const float wk = ty.w[static_cast<std::size_t>(y * ty.maxTaps + k)];
            const unsigned char* src = img.px.data() + ((sy + k) * img.width + cx0) * 3;
            for (Index i = 0; i < cols * 3; ++i) row[static_cast<std::size_t>(i)] += wk * src[i];
        }
        // horizontal pass
        for (Index x = 0; x < size; ++x) {
            const Index sx = tx.start[static_cast<std::size_t>(x)] - cx0;
            const float* wx = tx.w.data() + x * tx.maxTaps;
            float acc[3] = {0, 0, 0};
            for (Index k = 0; k < tx.count[static_cast<std::size_t>(x)]; ++k) {
                const float* p = row.data() + (sx + k) * 3;
                acc[0] += wx[k] * p[0];
                acc[1] += wx[k] * p[1];
                acc[2] += wx[k] * p[2];
            }
            const Index ox = flip ? size - 1 - x : x;
            for (int c = 0; c < 3; ++c) dst[c * plane + y * size + ox] = acc[c] * scale[c] + shift[c];
        }
    }
}

#ifdef TERN_HAVE_IMAGE_FOLDER

/// One TurboJPEG decompressor per thread.
tjhandle jpegHandle() {
    struct Handle {
        tjhandle h = tjInitDecompress();
        ~Handle() {
            if (h) tjDestroy(h);
        }
    };
    thread_local Handle handle;
    if (!handle.h) throw std::runtime_error("ImageFolderSource: tjInitDecompress() failed");
    return handle.h;
}

void checkDims(Index w, Index h, const char* kind) {
    if (w <= 0 || h <= 0 || static_cast<std::uint64_t>(w) * static_cast<std::uint64_t>(h) > kMaxPixels)
        throw BadFile(TERN_MSG("corrupt " << kind << " (its header gives the size " << w << "x" << h
                                          << ", outside 1 .. 2^28 pixels)"));
}

/// Decodes a JPEG at the smallest DCT scaling factor (1/8 .. 1) that keeps the box that
/// `boxOf(width, height)` returns at least `size` pixels on both sides; `box` and `factor`
/// return the box (full-size coordinates) and the factor used.
template <class BoxOf>
Rgb decodeJpeg(const std::vector<unsigned char>& bytes, Index size, BoxOf boxOf, CropBox& box,
               double& factor) {
    tjhandle h = jpegHandle();
    int w = 0, hgt = 0, subsamp = 0, colorspace = 0;
    if (tjDecompressHeader3(h, bytes.data(), static_cast<unsigned long>(bytes.size()), &w, &hgt,
                            &subsamp, &colorspace) != 0)
        throw BadFile(std::string("corrupt JPEG (libjpeg-turbo: ") + tjGetErrorStr2(h) + ")");
    checkDims(w, hgt, "JPEG");
    box = boxOf(Index(w), Index(hgt));
    int count = 0;
    const tjscalingfactor* sf = tjGetScalingFactors(&count);
    tjscalingfactor best{1, 1};
    double bestValue = 1.0;
    for (int i = 0; sf && i < count; ++i) {
        const double v = double(sf[i].num) / double(sf[i].denom);
        if (v > 1.0 || v >= bestValue) continue;
        if (double(box.width) * v >= double(size) && double(box.height) * v >= double(size)) {
            best = sf[i];
            bestValue = v;
        }
    }
    Rgb img;
    img.width = TJSCALED(w, best);
    img.height = TJSCALED(hgt, best);
    img.grayscale = colorspace == TJCS_GRAY;
    img.px.resize(static_cast<std::size_t>(img.width * img.height * 3));
    if (tjDecompress2(h, bytes.data(), static_cast<unsigned long>(bytes.size()), img.px.data(),
                      int(img.width), 0, int(img.height), TJPF_RGB, 0) != 0 &&
        tjGetErrorCode(h) != TJERR_WARNING)  // warnings (extraneous bytes, ...) decode as PIL does
        throw BadFile(std::string("corrupt JPEG (libjpeg-turbo: ") + tjGetErrorStr2(h) + ")");
    factor = double(img.width) / double(w);
    return img;
}

Rgb decodePng(const std::vector<unsigned char>& bytes) {
    png_image image;
    std::memset(&image, 0, sizeof image);
    image.version = PNG_IMAGE_VERSION;
    if (!png_image_begin_read_from_memory(&image, bytes.data(), bytes.size()))
        throw BadFile(std::string("corrupt PNG (libpng: ") + image.message + ")");
    struct Free {
        png_image* p;
        ~Free() { png_image_free(p); }
    } guard{&image};
    checkDims(Index(image.width), Index(image.height), "PNG");
    Rgb img;
    img.width = Index(image.width);
    img.height = Index(image.height);
    img.grayscale = (image.format & PNG_FORMAT_FLAG_COLOR) == 0;
    // RGBA, then the alpha is dropped (as PIL's convert("RGB") does: no compositing)
    image.format = PNG_FORMAT_RGBA;
    std::vector<unsigned char> rgba(PNG_IMAGE_SIZE(image));
    if (!png_image_finish_read(&image, nullptr, rgba.data(), 0, nullptr))
        throw BadFile(std::string("corrupt PNG (libpng: ") + image.message + ")");
    img.px.resize(static_cast<std::size_t>(img.width * img.height * 3));
    for (std::size_t i = 0, n = static_cast<std::size_t>(img.width * img.height); i < n; ++i) {
        img.px[3 * i] = rgba[4 * i];
        img.px[3 * i + 1] = rgba[4 * i + 1];
        img.px[3 * i + 2] = rgba[4 * i + 2];
    }
    return img;
}

#endif  // TERN_HAVE_IMAGE_FOLDER

[[noreturn]] void unsupported(const char* where) {
    throw std::runtime_error(std::string(where) +
                             ": tern was built without image support (libjpeg-turbo's TurboJPEG "
                             "and libpng were not found, or CMake had -DTERN_IMAGE_FOLDER=OFF); "
                             "install libturbojpeg0-dev and libpng-dev (bash setup.sh) and "
                             "re-run cmake");
}

/// The image files of one class folder (sorted by name), and the entries left out.
struct ClassListing {
    std::vector<std::string> files;  // relative to the split: "<class>/<name>"
    Index ignored = 0;
    std::string firstIgnored;
};

ClassListing listClass(const fs::path& split, const std::string& cls) {
    ClassListing l;
    std::error_code ec;
    fs::directory_iterator it(split / cls, ec), end;
    if (ec)
        throw std::runtime_error(TERN_MSG("loadImageFolder(): " << (split / cls).string()
                                                                << ": cannot list (" << ec.message()
                                                                << ")"));
    std::vector<std::string> names;
    for (; it != end; it.increment(ec)) {
        if (ec) break;
        const fs::path p = it->path();
        if (hidden(p)) continue;
        if (!imageExtension(p)) {
            if (l.ignored++ == 0) l.firstIgnored = cls + "/" + p.filename().string();
            continue;
        }
        names.push_back(p.filename().string());
    }
    if (ec)
        throw std::runtime_error(TERN_MSG("loadImageFolder(): " << (split / cls).string()
                                                                << ": cannot list (" << ec.message()
                                                                << ")"));
    std::sort(names.begin(), names.end());
    for (const auto& n : names) l.files.push_back(cls + "/" + n);
    return l;
}

/// The class folders of a split (sorted, hidden ones left out).
std::vector<std::string> listClassFolders(const fs::path& split) {
    std::vector<std::string> classes;
    std::error_code ec;
    for (fs::directory_iterator it(split, ec), end; !ec && it != end; it.increment(ec))
        if (!hidden(it->path()) && it->is_directory()) classes.push_back(it->path().filename().string());
    if (ec)
        throw std::runtime_error(TERN_MSG("loadImageFolder(): " << split.string() << ": cannot list ("
                                                                << ec.message() << ")"));
    std::sort(classes.begin(), classes.end());
    return classes;
}

/// One split: the files of each class in turn (round robin), checked, at most `limit` (0 =
/// all) kept.
Dataset scanSplit(const fs::path& split, const std::string& name,
                  const std::vector<std::string>& classes, const std::vector<bool>& present,
                  const ImageFolderOptions& opt, Index limit) {
    const char* where = "loadImageFolder()";
    const bool skip = opt.badImages == BadImages::Skip;
    std::vector<std::vector<std::string>> perClass(classes.size());
    Index ignored = 0;
    std::string firstIgnored;
    std::vector<std::string> emptyClasses;
    for (std::size_t c = 0; c < classes.size(); ++c) {
        if (!present[c]) continue;
        ClassListing l = listClass(split, classes[c]);
        if (l.ignored > 0 && ignored == 0) firstIgnored = l.firstIgnored;
        ignored += l.ignored;
        if (l.files.empty()) {
            const std::string msg =
                (split / classes[c]).string() + ": empty class folder (no .jpg, .jpeg or .png file)";
            if (!skip)
                throw std::runtime_error(std::string(where) + ": " + msg +
                                         " (--bad-images skip leaves it empty)");
            emptyClasses.push_back(msg);
        }
        perClass[c] = std::move(l.files);
    }
    if (ignored > 0)
        warning(TERN_MSG(where << ": " << split.string() << ": ignored " << ignored
                               << " file(s) without a .jpg, .jpeg or .png extension (first: "
                               << firstIgnored << ")"));
    for (const auto& m : emptyClasses) warning(std::string(where) + ": " + m + " (skipped)");

    std::vector<ImageFile> files;
    Index bad = 0;
    std::vector<std::string> badExamples;
    std::size_t longest = 0;
    for (const auto& f : perClass) longest = std::max(longest, f.size());
    for (std::size_t r = 0; r < longest && (limit <= 0 || Index(files.size()) < limit); ++r)
        for (std::size_t c = 0; c < classes.size(); ++c) {
            if (r >= perClass[c].size()) continue;
            if (limit > 0 && Index(files.size()) >= limit) break;
            ImageFile f;
            f.path = perClass[c][r];
            f.label = static_cast<std::int32_t>(c);
            const std::string full = (split / f.path).string();
            try {
                checkMagic(full, f);
            } catch (const BadFile& e) {
                if (!skip)
                    throw std::runtime_error(std::string(where) + ": " + full + ": " + e.what() +
                                             " (--bad-images skip leaves such files out)");
                if (badExamples.size() < kExamples) badExamples.push_back(f.path + ": " + e.what());
                ++bad;
                continue;
            }
            files.push_back(std::move(f));
        }
    if (bad > 0)
        warning(TERN_MSG(where << ": " << split.string() << ": skipped " << bad
                               << " bad file(s) (--bad-images skip): " << joined(badExamples, "; ")
                               << (bad > Index(badExamples.size()) ? "; ..." : "")));
    if (files.empty())
        throw std::runtime_error(std::string(where) + ": " + split.string() +
                                 ": no images (.jpg, .jpeg or .png files in its class folders)");
    Dataset d;
    d.name = name;
    d.count = static_cast<Index>(files.size());
    d.channels = 3;
    d.height = opt.imageSize;
    d.width = opt.imageSize;
    d.numClasses = static_cast<int>(classes.size());
    d.labels.reserve(files.size());
    for (const auto& f : files) d.labels.push_back(f.label);
    d.source = std::make_shared<ImageFolderSource>(split.string(), std::move(files),
                                                   static_cast<int>(classes.size()), opt);
    return d;
}

}  // namespace

// ---- options

Index ImageFolderOptions::resizeSide() const {
    if (resize > 0) return resize;
    return static_cast<Index>(std::lround(static_cast<double>(imageSize) / 0.875));
}

void ImageFolderOptions::validate() const {
    const char* w = "ImageFolderOptions::validate()";
    if (imageSize < 1 || imageSize > 8192)
        fail(w, TERN_MSG("imageSize must be in [1, 8192] (got " << imageSize << ")"));
    if (resize != 0 && (resize < imageSize || resize > 65536))
        fail(w, TERN_MSG("resize must be 0 (auto) or in [imageSize = " << imageSize
                                                                      << ", 65536] (got " << resize
                                                                      << ")"));
    if (!(minScale > 0 && minScale <= maxScale && maxScale <= 1))
        fail(w, TERN_MSG("cropScale must satisfy 0 < min <= max <= 1 (got " << minScale << ","
                                                                           << maxScale << ")"));
    if (!(minRatio > 0 && minRatio <= maxRatio && std::isfinite(maxRatio)))
        fail(w, TERN_MSG("cropRatio must satisfy 0 < min <= max (got " << minRatio << ","
                                                                     << maxRatio << ")"));
    if (mean.size() != 3) fail(w, TERN_MSG("mean needs 3 values, R,G,B (got " << mean.size() << ")"));
    if (stddev.size() != 3)
        fail(w, TERN_MSG("std needs 3 values, R,G,B (got " << stddev.size() << ")"));
    for (std::size_t c = 0; c < 3; ++c) {
        if (!std::isfinite(mean[c]))
            fail(w, TERN_MSG("mean must be finite (got " << mean[c] << " for channel " << c << ")"));
        if (!(stddev[c] > 0) || !std::isfinite(stddev[c]))
            fail(w, TERN_MSG("std must be finite and > 0 (got " << stddev[c] << " for channel "
                                                                << c << ")"));
    }
    if (threads < 0) fail(w, TERN_MSG("threads (the loader's) must be >= 0 (got " << threads << ")"));
}

std::vector<std::pair<std::string, std::string>> ImageFolderOptions::items() const {
    return {{"image-size", std::to_string(imageSize)},
            {"resize", std::to_string(resize)},
            {"crop-scale", formatShortest(minScale) + "," + formatShortest(maxScale)},
            {"crop-ratio", formatShortest(minRatio) + "," + formatShortest(maxRatio)},
            {"mean", numbers(mean)},
            {"std", numbers(stddev)},
            {"bad-images", badImagesName(badImages)}};
}

const std::vector<std::string>& ImageFolderOptions::keys() {
    static const std::vector<std::string> k{"image-size", "resize", "crop-scale", "crop-ratio",
                                            "mean",       "std",    "bad-images", "loader-threads"};
    return k;
}

void ImageFolderOptions::set(const std::string& key, const std::string& value) {
    const char* w = "ImageFolderOptions::set()";
    auto integer = [&] {
        const auto v = parseWholeInteger(value);
        if (!v) fail(w, "--" + key + ": '" + value + "' is not an integer");
        return *v;
    };
    auto pair = [&](double& lo, double& hi) {
        const std::vector<double> v = parseNumbers(key, value);
        if (v.size() != 2) fail(w, "--" + key + ": expected MIN,MAX (got '" + value + "')");
        lo = v[0];
        hi = v[1];
    };
    auto three = [&](std::vector<float>& out) {
        const std::vector<double> v = parseNumbers(key, value);
        if (v.size() != 3) fail(w, "--" + key + ": expected R,G,B (got '" + value + "')");
        out.assign(v.begin(), v.end());
    };
    if (key == "image-size") imageSize = static_cast<Index>(integer());
    else if (key == "resize") resize = static_cast<Index>(integer());
    else if (key == "crop-scale") pair(minScale, maxScale);
    else if (key == "crop-ratio") pair(minRatio, maxRatio);
    else if (key == "mean") three(mean);
    else if (key == "std") three(stddev);
    else if (key == "bad-images") badImages = parseBadImages(value);
    else if (key == "loader-threads") threads = static_cast<int>(integer());
    else fail(w, "unknown key '" + key + "'; known: " + joined(keys()));
}

BadImages parseBadImages(const std::string& name) {
    if (name == "fail") return BadImages::Fail;
    if (name == "skip") return BadImages::Skip;
    fail("parseBadImages()", "--bad-images must be fail or skip (got '" + name + "')");
}

std::string badImagesName(BadImages b) { return b == BadImages::Skip ? "skip" : "fail"; }

bool imageFolderSupported() {
#ifdef TERN_HAVE_IMAGE_FOLDER
    return true;
#else
    return false;
#endif
}

// ---- crops

CropBox randomResizedCrop(Index width, Index height, const ImageFolderOptions& opt,
                          std::uint64_t seed) {
    SplitMix r{seed};
    CropBox b;
    b.flip = (r.next() & 1u) != 0;
    const double area = static_cast<double>(width) * static_cast<double>(height);
    const double logLo = std::log(opt.minRatio), logHi = std::log(opt.maxRatio);
    for (int attempt = 0; attempt < kCropTries; ++attempt) {
        const double target = area * r.uniform(opt.minScale, opt.maxScale);
        const double ratio = std::exp(r.uniform(logLo, logHi));
        const auto w = static_cast<Index>(std::lround(std::sqrt(target * ratio)));
        const auto h = static_cast<Index>(std::lround(std::sqrt(target / ratio)));
        if (w > 0 && w <= width && h > 0 && h <= height) {
            b.y = r.upTo(height - h);
            b.x = r.upTo(width - w);
            b.width = w;
            b.height = h;
            return b;
        }
    }
    // fallback: the whole image, its ratio clamped to the range, centred
    const double inRatio = static_cast<double>(width) / static_cast<double>(height);
    Index w = width, h = height;
    if (inRatio < opt.minRatio) h = std::lround(static_cast<double>(w) / opt.minRatio);
    else if (inRatio > opt.maxRatio) w = std::lround(static_cast<double>(h) * opt.maxRatio);
    b.width = std::clamp<Index>(w, 1, width);
    b.height = std::clamp<Index>(h, 1, height);
    b.x = (width - b.width) / 2;
    b.y = (height - b.height) / 2;
    return b;
}

CropBox centerCrop(Index width, Index height, const ImageFolderOptions& opt) {
    const Index shorter = std::min(width, height);
    const Index side = std::clamp<Index>(
        std::lround(static_cast<double>(opt.imageSize) * static_cast<double>(shorter) /
                    static_cast<double>(opt.resizeSide())),
        1, shorter);
    CropBox b;
    b.width = b.height = side;
    b.x = (width - side) / 2;
    b.y = (height - side) / 2;
    return b;
}

// ---- the source

ImageFolderSource::ImageFolderSource(std::string root, std::vector<ImageFile> files, int classes,
                                     ImageFolderOptions opt)
    : root_(std::move(root)), files_(std::move(files)), classes_(classes), opt_(std::move(opt)) {
    opt_.validate();
    byClass_.resize(static_cast<std::size_t>(std::max(classes_, 0)));
    rankInClass_.resize(files_.size());
    Fnv h;
    for (const auto& [k, v] : opt_.items()) {
        h.text(k);
        h.text(v);
    }
    h.word(static_cast<std::uint64_t>(classes_));
    for (std::size_t i = 0; i < files_.size(); ++i) {
        const ImageFile& f = files_[i];
        if (f.label < 0 || f.label >= classes_)
            fail("ImageFolderSource()", TERN_MSG(f.path << ": label " << f.label
                                                        << " out of range [0, " << classes_ << ")"));
        auto& list = byClass_[static_cast<std::size_t>(f.label)];
        rankInClass_[i] = static_cast<Index>(list.size());
        list.push_back(static_cast<Index>(i));
        h.text(f.path);
        h.word(static_cast<std::uint64_t>(f.label));
        h.word(f.bytes);
    }
    known_.assign(files_.size(), 0);
    char out[32];
    std::snprintf(out, sizeof out, "folder:%016llx", static_cast<unsigned long long>(h.h));
    fingerprint_ = out;
}

std::string ImageFolderSource::fingerprint() const { return fingerprint_; }

ImageFolderReport ImageFolderSource::report() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return report_;
}

void ImageFolderSource::read(const std::vector<Index>& indices, float* dst,
                             std::mt19937_64* rng) const {
    const char* where = "ImageFolderSource::read()";
    const auto n = static_cast<Index>(indices.size());
    for (const Index i : indices)
        if (i < 0 || i >= static_cast<Index>(files_.size()))
            throw std::out_of_range(TERN_MSG(where << ": index " << i << " out of range for "
                                                   << root_ << " with " << files_.size()
                                                   << " images"));
    if (n == 0) return;
    if (!imageFolderSupported()) unsupported(where);
    // the per-image seeds first, in order: the batch does not depend on the threads
    std::vector<std::uint64_t> seeds(static_cast<std::size_t>(n), 0);
    if (rng)
        for (auto& s : seeds) s = (*rng)();
    const Index size = opt_.imageSize * opt_.imageSize * 3;
    const int threads = std::max(1, opt_.threads > 0 ? opt_.threads : omp_get_max_threads());
    std::vector<std::string> errors(static_cast<std::size_t>(n));
#pragma omp parallel for num_threads(threads) schedule(dynamic, 1) if (threads > 1 && n > 1)
    for (Index b = 0; b < n; ++b) {
        try {
            readOne(indices[static_cast<std::size_t>(b)], seeds[static_cast<std::size_t>(b)],
                    rng != nullptr, dst + b * size);
        } catch (const std::exception& e) {
            errors[static_cast<std::size_t>(b)] = e.what();
        }
    }
    for (const auto& e : errors)
        if (!e.empty()) throw std::runtime_error(e);
}

void ImageFolderSource::readOne(Index index, std::uint64_t seed, bool train, float* dst) const {
#ifdef TERN_HAVE_IMAGE_FOLDER
    const char* where = "ImageFolderSource::read()";
    const Index S = opt_.imageSize;
    const auto label = static_cast<std::size_t>(files_[static_cast<std::size_t>(index)].label);
    const std::vector<Index>& cls = byClass_[label];
    const auto rank = static_cast<std::size_t>(rankInClass_[static_cast<std::size_t>(index)]);
    // the image itself, or under the skip policy the next good image of its class
    for (std::size_t k = 0; k < cls.size(); ++k) {
        const Index i = cls[(rank + k) % cls.size()];
        const ImageFile& f = files_[static_cast<std::size_t>(i)];
        {
            std::lock_guard<std::mutex> lock(mutex_);
            if (known_[static_cast<std::size_t>(i)] & 1u) continue;  // known bad
        }
        const std::string path = (fs::path(root_) / f.path).string();
        try {
            const std::vector<unsigned char> bytes = readFile(path);
            auto boxOf = [&](Index w, Index h) {
                return train ? randomResizedCrop(w, h, opt_, seed) : centerCrop(w, h, opt_);
            };
            CropBox box;
            double factor = 1.0;
            Rgb img;
            if (f.png) {
                img = decodePng(bytes);
                box = boxOf(img.width, img.height);
            } else {
                img = decodeJpeg(bytes, S, boxOf, box, factor);
            }
            resampleInto(img, double(box.x) * factor, double(box.y) * factor,
                         double(box.width) * factor, double(box.height) * factor, S, box.flip, opt_,
                         dst);
            if (img.grayscale) {
                std::lock_guard<std::mutex> lock(mutex_);
                auto& seen = known_[static_cast<std::size_t>(i)];
                if (!(seen & 2u)) {
                    seen |= 2u;
                    ++report_.grayscale;
                    if (report_.grayscaleExamples.size() < kExamples)
                        report_.grayscaleExamples.push_back(f.path);
                }
            }
            return;
        } catch (const BadFile& e) {
            const std::string msg = path + ": " + e.what();
            if (opt_.badImages == BadImages::Fail)
                throw std::runtime_error(std::string(where) + ": " + msg +
                                         " (--bad-images skip replaces such images)");
            bool first = false;
            {
                std::lock_guard<std::mutex> lock(mutex_);
                auto& seen = known_[static_cast<std::size_t>(i)];
                if (!(seen & 1u)) {
                    seen |= 1u;
                    first = report_.badSkipped++ < Index(kExamples);
                    if (first) report_.badExamples.push_back(f.path + ": " + e.what());
                }
            }
            if (first)
                warning(std::string(where) + ": " + msg +
                        " (--bad-images skip: replaced by the next good image of its class; "
                        "further ones are counted in the run's summary)");
        }
    }
    throw std::runtime_error(TERN_MSG(where << ": " << root_ << ": no image of class "
                                            << (files_[static_cast<std::size_t>(index)].path.substr(
                                                   0, files_[static_cast<std::size_t>(index)]
                                                          .path.find('/')))
                                            << " can be decoded (" << cls.size()
                                            << " file(s), all bad)"));
#else
    (void)index;
    (void)seed;
    (void)train;
    (void)dst;
    unsupported("ImageFolderSource::read()");
#endif
}

std::string ImageFolderReport::summary(const std::string& name) const {
    std::string s;
    if (grayscale > 0)
        s += TERN_MSG(name << ": " << grayscale << " grayscale image(s) converted to RGB ("
                           << joined(grayscaleExamples) << (grayscale > Index(grayscaleExamples.size()) ? ", ..." : "")
                           << ")");
    if (badSkipped > 0)
        s += TERN_MSG((s.empty() ? "" : "; ") << name << ": " << badSkipped
                                              << " bad image(s) skipped, each replaced by the next "
                                                 "good image of its class ("
                                              << joined(badExamples, "; ")
                                              << (badSkipped > Index(badExamples.size()) ? "; ..." : "")
                                              << ")");
    return s;
}

std::string imageFolderSummary(const DataSplit& data) {
    std::string s;
    for (const Dataset* d : {&data.train, &data.test})
        if (const auto* f = dynamic_cast<const ImageFolderSource*>(d->source.get())) {
            const std::string part = f->report().summary(f->root());
            if (part.empty()) continue;
            if (!s.empty()) s += "; ";
            s += part;
        }
    return s;
}

// ---- scanning

DataSplit loadImageFolder(const std::string& dir, const ImageFolderOptions& opt, Index trainLimit,
                          Index testLimit) {
    const char* where = "loadImageFolder()";
    opt.validate();
    if (trainLimit < 0 || testLimit < 0)
        fail(where, TERN_MSG("limits must be >= 0 (got " << trainLimit << ", " << testLimit << ")"));
    if (!imageFolderSupported()) unsupported(where);
    const fs::path root(dir);
    std::error_code ec;
    if (!fs::is_directory(root, ec))
        throw std::runtime_error(std::string(where) + ": " + dir +
                                 " is not a directory (expected DIR/train/<class>/*.jpg and "
                                 "DIR/val/<class>/*.jpg)");
    const fs::path train = root / "train", val = root / "val";
    for (const fs::path& p : {train, val})
        if (!fs::is_directory(p, ec))
            throw std::runtime_error(std::string(where) + ": " + p.string() +
                                     " missing (an image folder needs DIR/train/<class>/ and "
                                     "DIR/val/<class>/)");
    const std::vector<std::string> classes = listClassFolders(train);
    if (classes.empty())
        throw std::runtime_error(std::string(where) + ": " + train.string() +
                                 " has no class folders (expected " + train.string() +
                                 "/<class>/*.jpg)");
    const std::vector<std::string> valClasses = listClassFolders(val);
    for (const auto& v : valClasses)
        if (!std::binary_search(classes.begin(), classes.end(), v))
            throw std::runtime_error(std::string(where) + ": " + (val / v).string() + ": class '" +
                                     v + "' is not a class of " + train.string() + " (its " +
                                     std::to_string(classes.size()) + " classes: " +
                                     joined(classes) + ")");
    std::vector<bool> all(classes.size(), true), inVal(classes.size(), false);
    std::vector<std::string> missing;
    for (std::size_t c = 0; c < classes.size(); ++c) {
        inVal[c] = std::binary_search(valClasses.begin(), valClasses.end(), classes[c]);
        if (!inVal[c]) missing.push_back(classes[c]);
    }
    if (!missing.empty())
        warning(TERN_MSG(where << ": " << val.string() << " has no folder for " << missing.size()
                               << " of " << classes.size() << " classes ("
                               << joined(std::vector<std::string>(
                                      missing.begin(),
                                      missing.begin() + std::min<std::size_t>(missing.size(), 5)))
                               << (missing.size() > 5 ? ", ..." : "")
                               << "): evaluation has no images of them"));
    DataSplit s;
    s.train = scanSplit(train, "folder/train", classes, all, opt, trainLimit);
    s.train.augment = true;
    s.test = scanSplit(val, "folder/val", classes, inVal, opt, testLimit);
    s.mean = opt.mean;
    s.stddev = opt.stddev;
    return s;
}

}  // namespace tern::io
