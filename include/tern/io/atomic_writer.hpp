#pragma once
/// \file The common part of the HDF5 writers (io/checkpoint.hpp's CheckpointWriter and
/// io/hdf5_file.hpp's Hdf5Writer): a file written to `path + ".tmp"` and renamed onto `path`
/// by the writer's close(). Keeps HDF5 out of the header, like the writers.
#include <memory>
#include <string>

namespace tern::io {

namespace h5 {
struct OutputFile;  // the open tmp file (private to src/io: hdf5_util.hpp)
}

/// Base of the HDF5 writers: everything goes to `path + ".tmp"`, which the writer's close()
/// fsyncs and renames onto `path`. Destroyed without close(), it removes the tmp file and
/// leaves `path` untouched (never throws).
class AtomicWriter {
public:
    /// True once close() has been called (successfully or not).
    bool closed() const;
    /// The final path.
    const std::string& path() const { return path_; }
    /// The file written until close(): path() + ".tmp".
    std::string tmpPath() const { return path_ + ".tmp"; }

protected:
    explicit AtomicWriter(std::string path);
    ~AtomicWriter();
    AtomicWriter(const AtomicWriter&) = delete;
    AtomicWriter& operator=(const AtomicWriter&) = delete;

    std::string path_;
    std::unique_ptr<h5::OutputFile> out_;  ///< set by the writer's constructor
};

}  // namespace tern::io
