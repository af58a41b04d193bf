#pragma once
/// \file Image-folder datasets: DIR/train/<class>/*.{jpg,jpeg,png} and DIR/val/<class>/*,
/// streamed from disk. The Dataset holds file paths and labels only; an ImageFolderSource
/// decodes each batch when it is asked for (libjpeg-turbo, libpng), in parallel, with the
/// ImageNet-style augmentation: random resized crop and horizontal flip for training, resize
/// of the shorter side and center crop for evaluation, then per-channel normalization.
/// docs/data.md describes the layout, the options and the bad-image policy.
#include "tern/io/dataset.hpp"

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace tern::io {

/// What to do with a file that is not a decodable JPEG or PNG (or an empty class folder).
enum class BadImages {
    Fail,  ///< std::runtime_error naming the file
    Skip,  ///< leave it out (scan time) or replace it by the next good image of its class
           ///< (read time), count it, warn through io::warning()
};

/// Sizes, augmentation ranges, normalization and policy of an image folder. Field names follow
/// tern-train's flags (--image-size, --resize, --crop-scale, --crop-ratio, --mean, --std,
/// --bad-images, --loader-threads).
struct ImageFolderOptions {
    Index imageSize = 224;  ///< side of the square images the network sees
    Index resize = 0;       ///< evaluation: shorter side resized to this, then center crop
                            ///< (0 = round(imageSize / 0.875): 256 for 224, 37 for 32)
    double minScale = 0.08, maxScale = 1.0;         ///< random resized crop: area fraction
    double minRatio = 3.0 / 4.0, maxRatio = 4.0 / 3.0;  ///< random resized crop: width / height
    std::vector<float> mean{0.485f, 0.456f, 0.406f};    ///< per channel, on [0, 1] pixels
    std::vector<float> stddev{0.229f, 0.224f, 0.225f};  ///< per channel, > 0
    BadImages badImages = BadImages::Fail;
    int threads = 0;  ///< decoding threads (0 = omp_get_max_threads(), the run's threads)

    /// The evaluation resize: `resize`, or round(imageSize / 0.875) when 0.
    Index resizeSide() const;
    /// Throws std::invalid_argument "ImageFolderOptions::validate(): <field> ..." naming the field.
    void validate() const;
    /// key=value form with tern-train's flag names ("image-size", "resize", "crop-scale" as
    /// "0.08,1", "crop-ratio", "mean", "std", "bad-images"); loader-threads is not included
    /// (it does not change the images).
    std::vector<std::pair<std::string, std::string>> items() const;
    /// Sets one field from its key and text (the inverse of items(), plus "loader-threads").
    /// Throws std::invalid_argument naming the key for an unknown key or a malformed value.
    void set(const std::string& key, const std::string& value);
    /// The keys set() knows.
    static const std::vector<std::string>& keys();
};

/// "fail" | "skip"; throws std::invalid_argument for anything else.
BadImages parseBadImages(const std::string& name);
std::string badImagesName(BadImages b);

/// Whether tern was built with image-folder support (CMake TERN_IMAGE_FOLDER: libjpeg-turbo's
/// TurboJPEG and libpng found). Without it loadImageFolder() throws std::runtime_error saying so.
bool imageFolderSupported();

/// One image file of a split: its path relative to the split directory ("cat/1.jpg"), label,
/// size in bytes at scan time and whether its magic bytes say PNG (else JPEG).
struct ImageFile {
    std::string path;
    std::int32_t label = 0;
    std::uint64_t bytes = 0;
    bool png = false;
};

/// The region of a decoded image that is resampled to the output, in source pixels, and
/// whether the output is mirrored left-right.
struct CropBox {
    Index x = 0, y = 0, width = 0, height = 0;
    bool flip = false;
};

/// torchvision's RandomResizedCrop + RandomHorizontalFlip(0.5) for a width x height image, from
/// the per-image seed `seed`: up to 10 tries of area fraction U(minScale, maxScale) and log aspect
/// ratio U(log minRatio, log maxRatio); a box that fits is placed uniformly; after 10 misses, the
/// largest center box whose ratio is clamped to the range. Always inside the image.
CropBox randomResizedCrop(Index width, Index height, const ImageFolderOptions& opt,
                          std::uint64_t seed);
/// The evaluation box: the center square of side imageSize * shorter / resizeSide() (the
/// region that "resize the shorter side to resizeSide(), center-crop imageSize" keeps).
CropBox centerCrop(Index width, Index height, const ImageFolderOptions& opt);

/// Counts of what the source met while reading (each file counted once).
struct ImageFolderReport {
    Index badSkipped = 0;  ///< files that failed to decode and were replaced (skip policy)
    Index grayscale = 0;   ///< single-channel images converted to RGB
    std::vector<std::string> badExamples, grayscaleExamples;  ///< the first few, with reasons
    /// One line, "" when nothing happened.
    std::string summary(const std::string& name) const;
};

/// The streamed images of one split. read() decodes `indices` in parallel on `threads`
/// threads. With an rng it first draws one 64-bit seed per index, in order, then decodes;
/// each image's crop and flip depend only on its seed, so the batch is the same for any thread
/// count. Thread-safe (read() may be called from several threads).
class ImageFolderSource final : public ImageSource {
public:
    /// `root`: the split directory; `files`: its images (labels in [0, classes)).
    ImageFolderSource(std::string root, std::vector<ImageFile> files, int classes,
                      ImageFolderOptions opt);

    void read(const std::vector<Index>& indices, float* dst, std::mt19937_64* rng) const override;
    /// Hash (hex) of the options that change the images, the class count, and every file's
    /// relative path, label and size.
    std::string fingerprint() const override;

    const std::string& root() const { return root_; }
    const std::vector<ImageFile>& files() const { return files_; }
    const ImageFolderOptions& options() const { return opt_; }
    ImageFolderReport report() const;

private:
    void readOne(Index index, std::uint64_t seed, bool train, float* dst) const;

    std::string root_;
    std::vector<ImageFile> files_;
    int classes_;
    ImageFolderOptions opt_;
    std::vector<std::vector<Index>> byClass_;  // indices of each class, in file order
    std::vector<Index> rankInClass_;           // position of each index in its class's list
    std::string fingerprint_;
    mutable std::mutex mutex_;  // guards the report
    mutable std::vector<std::uint8_t> known_;  // per file: 1 bad, 2 grayscale seen
    mutable ImageFolderReport report_;
};

/// Scans DIR/train and DIR/val (classes: train's sub-folders in sorted byte order; hidden
/// entries, names starting with '.', are ignored) and returns the split with streamed images
/// (empty `images`, `source` set): train with augment = true, test = val. `trainLimit` /
/// `testLimit` (0 = all) keep the first N images of the split's order, which takes the classes
/// in turn (round robin), so a limit keeps every class. Each kept file is opened and its magic
/// bytes checked (JPEG FF D8 FF or PNG); mean/stddev come from `opt`. Errors
/// (std::runtime_error, naming the path): DIR, DIR/train or DIR/val missing; no class folder;
/// no image at all; an extra class in val; under BadImages::Fail an empty class folder or a
/// bad file (unreadable, empty, not JPEG/PNG). A class without a val folder is allowed, with a
/// warning. Throws std::invalid_argument for bad options.
DataSplit loadImageFolder(const std::string& dir, const ImageFolderOptions& opt,
                          Index trainLimit = 0, Index testLimit = 0);

/// The summary lines of both splits of an image-folder DataSplit ("" for other datasets).
std::string imageFolderSummary(const DataSplit& data);

}  // namespace tern::io
