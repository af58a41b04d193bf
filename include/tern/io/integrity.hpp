#pragma once
/// \file The integrity header of tern's HDF5 files, checked before libhdf5 reads a byte.
///
/// libhdf5 trusts its metadata: one flipped bit in a file can make it crash or hang. So every
/// file tern writes (CheckpointWriter, Hdf5Writer) starts with a 512-byte HDF5 *user block*
/// (a region HDF5, h5dump and h5py skip), and the writer fills its start with this header once
/// the HDF5 content is complete (docs/checkpoint-format.md, "Integrity header"):
///
/// | bytes    | contents                                                              |
/// |----------|-----------------------------------------------------------------------|
/// | [0, 8)   | magic `TERNSUM1`                                                      |
/// | [8, 16)  | the file's size in bytes (uint64, little-endian), user block included |
/// | [16, 20) | CRC-32 (zlib's, IEEE 802.3) of the whole file, these 4 bytes as zero   |
/// | [20, 24) | the user block's size (uint32, little-endian): 512                    |
/// | [24, 512)| a line of text saying the above, then zeros                           |
///
/// The readers (CheckpointReader, Hdf5Reader) call checkIntegrity() first and hand a file to
/// libhdf5 only if its header checks out, or if it has none (older tern versions, h5py and other
/// programs); CheckpointReader warns about the latter through warning().
#include <cstdint>
#include <functional>
#include <string>

namespace tern::io {

/// Size of the user block tern's HDF5 files start with (HDF5's smallest).
inline constexpr std::size_t kUserBlockSize = 512;
/// The first 8 bytes of a file with an integrity header.
inline constexpr char kIntegrityMagic[] = "TERNSUM1";

/// What checkIntegrity() found.
struct IntegrityCheck {
    bool hasHeader = false;  ///< false: no header (the file was not checked)
    std::uint64_t size = 0;  ///< the file's size in bytes
    std::uint32_t crc = 0;   ///< the stored (and verified) CRC-32, where hasHeader
};

/// Checks the integrity header of the file `path`, reading it whole (in chunks, without
/// holding it in memory). Returns hasHeader = false for a file without a header. Throws
/// std::runtime_error "<who>: '<path>' is corrupt: checksum mismatch (file damaged or
/// truncated)" (or "... <n> bytes, the integrity header says <m> (file damaged or truncated)",
/// or "... damaged integrity header") when the check fails, and "<who>: cannot open/read
/// '<path>': <reason>" when the file cannot be read.
IntegrityCheck checkIntegrity(const std::string& path, const std::string& who);

/// Fills the integrity header into the first kUserBlockSize bytes of `file` (a whole file in
/// memory whose HDF5 content starts at kUserBlockSize). Used by the writers; exposed for tests
/// and tools that need to reseal a file they changed on purpose.
void sealIntegrity(unsigned char* file, std::uint64_t size);

/// For a file without an integrity header (older tern, other programs), which libhdf5 may crash
/// or hang on when it is damaged: runs `attempt` (the caller's whole reading of `path`) in a
/// forked child first, and throws std::runtime_error naming the file if the child dies by a
/// signal or runs over 5 s (plus 1 s per 10 MB); the caller then reads it for real, on the same path the child
/// survived. Exceptions inside the child are ignored (the caller meets them itself). Does
/// nothing for a file with a header (checked instead) or one that cannot be read.
void readUnverifiedSafely(const std::string& path, const std::string& who,
                          const std::function<void()>& attempt);

/// Where the io layer's warnings go (one line each, without a newline). The default handler
/// writes "warning: <text>" to std::cerr. A null handler restores the default. Returns the
/// previous handler (empty for the default).
std::function<void(const std::string&)> setWarningHandler(
    std::function<void(const std::string&)> handler);

/// Passes one warning to the handler.
void warning(const std::string& text);

}  // namespace tern::io
