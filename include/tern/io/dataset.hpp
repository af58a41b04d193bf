#pragma once
/// \file In-memory image classification datasets and their readers:
/// MNIST / Fashion-MNIST (IDX, raw or gzipped) and CIFAR-10 (binary batches).
#include "tern/core/types.hpp"

#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <vector>

namespace tern::io {

/// Images that are not held in memory but produced on demand (an image folder decoded from
/// disk, io/image_folder.hpp). A Dataset with a source keeps its labels in memory and no
/// `images`; gatherBatch() and readImages() ask the source.
class ImageSource {
public:
    virtual ~ImageSource() = default;
    /// Writes the images `indices` (each in [0, count)) into `dst` as NCHW float32, in the
    /// dataset's final form (normalized). With `rng` (training), applies the source's
    /// augmentation, drawing from `rng` in a way that depends only on `indices` and the
    /// generator's state (not on threads). Throws std::runtime_error naming the file of an
    /// image it cannot produce (unless its policy skips such images).
    virtual void read(const std::vector<Index>& indices, float* dst,
                      std::mt19937_64* rng) const = 0;
    /// A string that changes when the images would (file list, sizes, options): part of the
    /// run's data fingerprint.
    virtual std::string fingerprint() const = 0;
};

/// N images, NCHW float32, and their labels in [0, numClasses).
struct Dataset {
    std::string name;                  ///< "mnist/train", ...
    Index count = 0, channels = 0, height = 0, width = 0;
    int numClasses = 10;
    std::vector<float> images;         ///< count * channels * height * width, NCHW
    std::vector<std::int32_t> labels;  ///< count entries
    bool augment = false;              ///< training-time pad-4 random crop + horizontal flip
    /// Streamed images (empty `images`): gatherBatch() and readImages() read them from here,
    /// and `augment` means the source's own augmentation.
    std::shared_ptr<const ImageSource> source;

    Index imageSize() const { return channels * height * width; }
    /// Image i of an in-memory dataset (no source).
    const float* image(Index i) const { return images.data() + i * imageSize(); }
};

/// Copies images [start, start + n) of `d` into `dst` (NCHW) without augmentation: from
/// memory, or from d.source. Throws std::out_of_range for a range outside [0, d.count).
void readImages(const Dataset& d, Index start, Index n, float* dst);

/// A train/test pair as the apps use it.
struct DataSplit {
    Dataset train, test;
    std::vector<float> mean, stddev;  ///< per-channel normalization applied to both
};

/// Known dataset names: "mnist", "fashion-mnist", "cifar10", "folder" (io/image_folder.hpp).
std::vector<std::string> datasetNames();

/// Reads MNIST/Fashion-MNIST IDX files (`train-images-idx3-ubyte`[.gz], ...) from `dir`.
/// `split` is "train" or "test". Pixel values scaled to [0, 1] (not yet normalized).
/// Throws std::runtime_error naming the file and the problem (missing, bad magic, truncated,
/// count mismatch between images and labels, label out of range).
Dataset readIdx(const std::string& dir, const std::string& split, const std::string& name);

/// Reads CIFAR-10 binary batches from `dir` (data_batch_1..5.bin for "train",
/// test_batch.bin for "test"); values scaled to [0, 1]. Same error policy.
Dataset readCifar10(const std::string& dir, const std::string& split);

/// Loads train and test of `name` from `dir`, keeps the first `trainLimit` training images
/// (0 = all), computes per-channel mean/std on train and normalizes both. Sets
/// train.augment for cifar10. Throws std::invalid_argument for an unknown name (listing the
/// known ones), std::runtime_error for file problems.
DataSplit loadDataset(const std::string& name, const std::string& dir, Index trainLimit = 0,
                      Index testLimit = 0);
struct ImageFolderOptions;
/// As above; "folder" streams DIR/train and DIR/val with `folder`'s sizes, augmentation and
/// normalization (io::loadImageFolder(); the 4-argument form uses the default options).
DataSplit loadDataset(const std::string& name, const std::string& dir, Index trainLimit,
                      Index testLimit, const ImageFolderOptions& folder);

/// Per-channel normalization in place: x = (x - mean[c]) / stddev[c].
void normalize(Dataset& d, const std::vector<float>& mean, const std::vector<float>& stddev);
/// Per-channel mean and standard deviation over a dataset.
void channelStats(const Dataset& d, std::vector<float>& mean, std::vector<float>& stddev);

/// Copies images `indices` of `d` into `dst` (NCHW, indices.size() images) and their labels
/// into `labels`. With d.augment, applies pad-4 random crop and random horizontal flip drawn
/// from `rng` (zero padding, in normalized space).
/// With d.augment but a null `rng`, copies plainly (evaluation). `labels` may be null.
/// Each augmented image takes one `rng()` draw, giving its crop offsets (each uniform in
/// [0, 8] on the padded image) and its flip bit. Throws std::out_of_range for an index
/// outside [0, d.count).
void gatherBatch(const Dataset& d, const std::vector<Index>& indices, float* dst,
                 std::int32_t* labels, std::mt19937_64* rng);

}  // namespace tern::io
