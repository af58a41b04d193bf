#pragma once
/// \file The common part of the HDF5 writers (io/checkpoint.hpp's CheckpointWriter and
/// io/hdf5_file.hpp's Hdf5Writer): a file built in memory, written to `path + ".tmp"` with the
/// integrity header (io/integrity.hpp) and renamed onto `path` by the writer's close(). Keeps
/// HDF5 out of the header, like the writers.
#include <memory>
#include <string>

namespace tern::io {

namespace h5 {
struct OutputFile;  // the open tmp file (private to src/io: hdf5_util.hpp)
}

/// Base of the HDF5 writers: `path + ".tmp"` is created at once (an unwritable directory is
/// found before any work); the HDF5 file is built in memory, so no HDF5 call meets a full disk;
/// the writer's close() writes, fsyncs and renames it onto `path` with checked POSIX calls.
/// Destroyed without close(), or after a failed close(), it has removed the tmp file and left
/// `path` untouched (never throws, never touches a closed HDF5 handle).
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
