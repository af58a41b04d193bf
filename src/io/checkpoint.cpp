#include "tern/io/checkpoint.hpp"

#include "hdf5_util.hpp"

#include "tern/core/error.hpp"
#include "tern/io/integrity.hpp"

#include <H5Cpp.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <limits>
#include <mutex>
#include <optional>
#include <set>
#include <stdexcept>
#include <system_error>
#include <variant>

namespace tern::io {

namespace fs = std::filesystem;

using namespace h5;


// ================================================================== CheckpointWriter

CheckpointWriter::CheckpointWriter(const std::string& path, const std::string& format,
                                   int version)
    : AtomicWriter(path) {
    const char* where = "CheckpointWriter::CheckpointWriter()";
    if (path.empty()) fail(where, "empty path");
    if (format.empty()) fail(where, "empty format");
    if (version < 1) fail(where, TERN_MSG("version must be >= 1 (got " << version << ")"));
    std::error_code ec;
    if (fs::is_directory(path, ec))
        throw std::runtime_error(std::string(where) + ": '" + path + "' is a directory");
    quietHdf5();
    out_ = std::make_unique<OutputFile>(path, [&](const std::string& why) {
        return std::string(where) + ": cannot create '" + tmpPath() + "': " + why;
    });
    // if these throw, out_'s destructor closes and removes the tmp file
    attr("", "format", format);
    attr("", "version", static_cast<std::int64_t>(version));
}

namespace {

/// Writes `count` values at `data` as the dataset `key` of type `fileType` (from `memType`)
/// whose dims are `shape.dims` (rank 0: a scalar dataspace).
void writeDataset(H5::H5File& file, const std::string& key, const std::string& tmp,
                  const char* where, const void* data, Index count, const Shape& shape,
                  const H5::PredType& fileType, const H5::PredType& memType) {
    const std::vector<std::string> parts = splitKey(key, where, false);
    const std::vector<hsize_t> dims = datasetDims(shape, key, where);
    checkCount(count, shape, key, where);
    try {
        createDataset(file, parts, key, tmp, where, dims, fileType, memType, data, count);
    } catch (const H5::Exception& e) {
        throw std::runtime_error(std::string(where) + ": cannot write '" + key + "' to '" + tmp +
                                 "': " + detail(e));
    }
}

}  // namespace

void CheckpointWriter::write(const std::string& key, CVecRef data, const Shape& shape) {
    const char* where = "CheckpointWriter::write()";
    out_->checkOpen(where);
    writeDataset(out_->file(), key, tmpPath(), where, data.data(), data.size(), shape,
                 H5::PredType::IEEE_F32LE, H5::PredType::NATIVE_FLOAT);
}

void CheckpointWriter::writeBytes(const std::string& key, const std::vector<std::uint8_t>& data,
                                  const Shape& shape) {
    const char* where = "CheckpointWriter::writeBytes()";
    out_->checkOpen(where);
    writeDataset(out_->file(), key, tmpPath(), where, data.data(), static_cast<Index>(data.size()),
                 shape, H5::PredType::STD_U8LE, H5::PredType::NATIVE_UINT8);
}

void CheckpointWriter::writeBytes(const std::string& key, const std::vector<std::int8_t>& data,
                                  const Shape& shape) {
    const char* where = "CheckpointWriter::writeBytes()";
    out_->checkOpen(where);
    writeDataset(out_->file(), key, tmpPath(), where, data.data(), static_cast<Index>(data.size()),
                 shape, H5::PredType::STD_I8LE, H5::PredType::NATIVE_INT8);
}

void CheckpointWriter::writeInts(const std::string& key, const std::vector<std::int64_t>& data) {
    const char* where = "CheckpointWriter::writeInts()";
    out_->checkOpen(where);
    const std::vector<std::string> parts = splitKey(key, where, false);
    try {
        const hsize_t n = data.size();
        // stored in the narrowest signed type that holds every value (sign codes and masks
        // take 1 byte, not 8); HDF5 converts back to int64 on read
        const auto [lo, hi] = data.empty() ? std::pair<std::int64_t, std::int64_t>{0, 0}
                                           : std::pair{*std::min_element(data.begin(), data.end()),
                                                       *std::max_element(data.begin(), data.end())};
        auto fits = [lo = lo, hi = hi](auto type) {  // (clang 14 cannot capture bindings)
            using T = decltype(type);
            return lo >= std::numeric_limits<T>::min() && hi <= std::numeric_limits<T>::max();
        };
        const H5::PredType& fileType = fits(std::int8_t{})    ? H5::PredType::STD_I8LE
                                       : fits(std::int16_t{}) ? H5::PredType::STD_I16LE
                                       : fits(std::int32_t{}) ? H5::PredType::STD_I32LE
                                                              : H5::PredType::STD_I64LE;
        createDataset(out_->file(), parts, key, tmpPath(), where, {n}, fileType,
                      H5::PredType::NATIVE_INT64, data.data(), static_cast<Index>(n));
    } catch (const H5::Exception& e) {
        throw std::runtime_error(std::string(where) + ": cannot write '" + key + "' to '" +
                                 tmpPath() + "': " + detail(e));
    }
}

namespace {

/// Opens the group or dataset `path` for an attribute, creating groups as needed, and removes
/// an existing attribute `name` so it can be recreated with a new type.
Object attrTarget(H5::H5File& file, const std::string& path,
                  const std::string& name, const std::string& tmp, const char* where) {
    if (name.empty()) fail(where, "empty attribute name on '" + path + "'");
    const std::vector<std::string> parts = splitKey(path, where, true);
    for (std::size_t n = 1; n <= parts.size(); ++n) {
        const std::string prefix = joinKey(parts, n);
        if (!file.nameExists(prefix)) {
            file.createGroup(prefix);
        } else if (n < parts.size() && file.childObjType(prefix) != H5O_TYPE_GROUP) {
            fail(where, "cannot set attribute '" + name + "' on '" + path + "' in '" + tmp +
                            "': '" + prefix + "' is a dataset, not a group");
        }
    }
    const std::string full = joinKey(parts, parts.size());
    std::optional<Object> obj =
        openObject(file, full, parts.empty() ? H5O_TYPE_GROUP : file.childObjType(full));
    if (!obj)
        fail(where, "cannot set attribute '" + name + "' on '" + path +
                        "': it is neither a group nor a dataset");
    if ((*obj)->attrExists(name)) (*obj)->removeAttr(name);
    return *obj;
}

/// Sets the attribute `name` on the group or dataset `path` of `out` (see attrTarget):
/// `create(obj)` creates and writes it. HDF5 failures: std::runtime_error naming the attribute,
/// the object and the tmp file.
template <typename Create>
void setAttr(OutputFile& out, const std::string& path, const std::string& name,
             const char* where, Create create) {
    out.checkOpen(where);
    try {
        Object obj = attrTarget(out.file(), path, name, out.tmp, where);
        create(obj);
    } catch (const H5::Exception& e) {
        throw std::runtime_error(std::string(where) + ": cannot set '" + name + "' on '" + path +
                                 "' in '" + out.tmp + "': " + detail(e));
    }
}

}  // namespace

void CheckpointWriter::attr(const std::string& path, const std::string& name, double value) {
    setAttr(*out_, path, name, "CheckpointWriter::attr()", [&](Object& obj) {
        obj->createAttribute(name, H5::PredType::IEEE_F64LE, H5::DataSpace(H5S_SCALAR))
            .write(H5::PredType::NATIVE_DOUBLE, &value);
    });
}

void CheckpointWriter::attr(const std::string& path, const std::string& name,
                            std::int64_t value) {
    setAttr(*out_, path, name, "CheckpointWriter::attr()", [&](Object& obj) {
        obj->createAttribute(name, H5::PredType::STD_I64LE, H5::DataSpace(H5S_SCALAR))
            .write(H5::PredType::NATIVE_INT64, &value);
    });
}

void CheckpointWriter::attr(const std::string& path, const std::string& name,
                            const std::string& value) {
    const char* where = "CheckpointWriter::attr()";
    out_->checkOpen(where);
    if (value.find('\0') != std::string::npos)
        fail(where, "string attribute '" + name + "' on '" + path + "' contains a NUL byte");
    setAttr(*out_, path, name, where, [&](Object& obj) {
        // Fixed-length UTF-8 with its NUL (an empty string is one NUL): no global heap, whose
        // damage libhdf5 does not survive. h5dump prints it as text, h5py as bytes.
        obj->createAttribute(name, fixedString(value), H5::DataSpace(H5S_SCALAR))
            .write(fixedString(value), value);
    });
}

void CheckpointWriter::close() {
    const std::string where = "CheckpointWriter::close()";
    const bool committed = out_->commit(where, [&](const std::string& why) {
        return where + ": cannot write '" + tmpPath() + "': " + why;
    });
    if (!committed) return;
    // The rename is durable once the directory entry is on disk.
    fs::path dir = fs::path(path_).parent_path();
    if (dir.empty()) dir = ".";
    try {
        fsyncPath(dir, true, where);
    } catch (const std::runtime_error& e) {
        throw std::runtime_error(std::string(e.what()) + " ('" + path_ +
                                 "' is written but may not survive a power loss)");
    }
}

// ================================================================== CheckpointReader

struct CheckpointReader::Impl {
    H5::H5File file;
    std::uint64_t fileSize = 0;
    Impl(const std::string& path, const H5::FileAccPropList& fapl, std::uint64_t size)
        : file(path, H5F_ACC_RDONLY, H5::FileCreatPropList::DEFAULT, fapl), fileSize(size) {}
};

namespace {

/// Warns once per file and process that `path` has no integrity header (a file is often
/// opened more than once: to rebuild a network, then to load it).
void warnUnchecked(const std::string& path) {
    static std::mutex mutex;
    static std::set<std::string> warned;
    std::error_code ec;
    const fs::path canonical = fs::weakly_canonical(path, ec);
    {
        std::lock_guard<std::mutex> lock(mutex);
        if (!warned.insert(ec ? path : canonical.string()).second) return;
    }
    warning("CheckpointReader: '" + path + "' has no integrity checksum (written by tern " +
            "before 2026-11-29 or by another program); reading it unverified");
}

}  // namespace

CheckpointReader::CheckpointReader(const std::string& path, const std::string& format,
                                   int maxVersion)
    : path_(path) {
    const std::string where = "CheckpointReader: '" + path + "'";
    std::error_code ec;
    if (!fs::exists(path, ec)) throw std::runtime_error(where + ": no such file");
    if (fs::is_directory(path, ec)) throw std::runtime_error(where + ": is a directory");
    quietHdf5();
    // The integrity header first: libhdf5 does not survive every damaged file.
    const IntegrityCheck integrity = checkIntegrity(path, "CheckpointReader");
    if (!integrity.hasHeader) probeUnverified(path, "CheckpointReader");
    try {
        if (!H5::H5File::isHdf5(path))
            throw std::runtime_error(where + ": not an HDF5 file (no HDF5 signature)");
    } catch (const H5::Exception& e) {
        throw std::runtime_error(where + ": cannot read: " + detail(e));
    }
    try {
        H5::FileAccPropList fapl;
#if H5_VERSION_GE(1, 10, 7)
        // Shared lock where the filesystem has locks; still open where it has none (NFS).
        fapl.setFileLocking(true, true);
#endif
        impl_ = std::make_unique<Impl>(path, fapl, integrity.size);
    } catch (const H5::Exception& e) {
        throw std::runtime_error(where + ": truncated or corrupt HDF5 file: " + detail(e));
    }
    try {
        const H5::Group root = impl_->file.openGroup("/");
        if (!root.attrExists("format"))
            throw std::runtime_error(where + " is not a tern checkpoint (no 'format' attribute)");
        const H5::Attribute fa = root.openAttribute("format");
        if (fa.getTypeClass() != H5T_STRING)
            throw std::runtime_error(where + " is not a tern checkpoint ('format' is " +
                                     typeName(fa.getDataType()) + ", not a string)");
        std::string stored;
        fa.read(fa.getStrType(), stored);
        if (stored != format)
            throw std::runtime_error(where + " is not a tern checkpoint (format '" + stored +
                                     "', expected '" + format + "')");
        if (!root.attrExists("version"))
            throw std::runtime_error(where + ": no 'version' attribute");
        const H5::Attribute va = root.openAttribute("version");
        if (!fitsInt64(va.getDataType()) || va.getSpace().getSelectNpoints() != 1)
            throw std::runtime_error(where + ": 'version' is not an integer");
        std::int64_t v = 0;
        va.read(H5::PredType::NATIVE_INT64, &v);
        if (v < 1) throw std::runtime_error(where + TERN_MSG(": invalid version " << v));
        if (v > maxVersion)
            throw std::runtime_error(where + TERN_MSG(": version " << v
                                                      << " is newer than supported (<= "
                                                      << maxVersion << "); upgrade tern"));
        version_ = static_cast<int>(v);
    } catch (const H5::Exception& e) {
        throw std::runtime_error(where + ": corrupt HDF5 file: " + detail(e));
    }
    if (!integrity.hasHeader) warnUnchecked(path);
}

CheckpointReader::~CheckpointReader() {
    if (!impl_) return;
    try {
        impl_->file.close();
    } catch (...) {
    }
}

namespace {

/// Opens the attribute `name` of the object `objPath` or throws std::out_of_range.
H5::Attribute openAttr(const H5::H5File& file, const std::string& objPath,
                       const std::string& name, const std::string& path, const char* where) {
    const std::vector<std::string> parts = splitKey(objPath, where, true);
    const auto type = objectType(file, parts);
    if (!type)
        throw std::out_of_range(std::string(where) + ": no object '" + objPath + "' in '" +
                                path + "'");
    auto obj = openObject(file, joinKey(parts, parts.size()), *type);
    if (!obj || !(*obj)->attrExists(name))
        throw std::out_of_range(std::string(where) + ": no attribute '" + name + "' on '" +
                                joinKey(parts, parts.size()) + "' in '" + path + "'");
    H5::Attribute a = (*obj)->openAttribute(name);
    if (a.getSpace().getSelectNpoints() != 1)
        fail(where, "attribute '" + name + "' on '" + joinKey(parts, parts.size()) + "' in '" +
                        path + "' is not a single value");
    return a;
}

}  // namespace

bool CheckpointReader::has(const std::string& key) const {
    return hasObject(impl_->file, key, H5O_TYPE_DATASET, false, path_, "CheckpointReader::has()");
}

bool CheckpointReader::hasGroup(const std::string& path) const {
    return hasObject(impl_->file, path, H5O_TYPE_GROUP, true, path_,
                     "CheckpointReader::hasGroup()");
}

Shape CheckpointReader::shape(const std::string& key) const {
    const char* where = "CheckpointReader::shape()";
    try {
        const H5::DataSet ds = openDataset(impl_->file, key, path_, where);
        const auto s = spaceShape(ds.getSpace());
        if (!s) fail(where, "'" + key + "' in '" + path_ + "' has a null dataspace");
        checkClaim(ds, *s, 0, key, path_, impl_->fileSize, where);
        return *s;
    } catch (const H5::Exception& e) {
        throw std::runtime_error(std::string(where) + ": '" + key + "' in '" + path_ +
                                 "': " + detail(e));
    }
}

namespace {

/// Opens the dataset `key`, checks its type with `typeOk` (else std::invalid_argument
/// "... is <type>, expected <want>") and its dims against `expected`, and reads it as `memType`.
template <typename Out>
Out readDataset(const H5::H5File& file, std::uint64_t fileSize, const std::string& key,
                const Shape& expected, const std::string& path, const char* where,
                bool (*typeOk)(const H5::DataType&), const char* want,
                const H5::PredType& memType) {
    try {
        const H5::DataSet ds = openDataset(file, key, path, where);
        const H5::DataType type = ds.getDataType();
        if (!typeOk(type))
            fail(where, "'" + key + "' in '" + path + "' is " + typeName(type) + ", expected " +
                            want);
        const auto stored = spaceShape(ds.getSpace());
        if (!stored) fail(where, "'" + key + "' in '" + path + "' has a null dataspace");
        if (*stored != expected)
            fail(where, "'" + key + "' in '" + path + "' has shape " + stored->str() +
                            ", expected " + expected.str());
        checkClaim(ds, *stored, sizeof(typename Out::value_type), key, path, fileSize, where);
        Out v(stored->size());
        if (v.size() > 0) ds.read(v.data(), memType);
        return v;
    } catch (const H5::Exception& e) {
        throw std::runtime_error(std::string(where) + ": cannot read '" + key + "' from '" +
                                 path + "': " + detail(e));
    }
}

bool isFloat32(const H5::DataType& t) { return t.getClass() == H5T_FLOAT && t.getSize() == 4; }
bool isUint8(const H5::DataType& t) {
    return t.getClass() == H5T_INTEGER && t.getSize() == 1 && !isSigned(t);
}
bool isInt8(const H5::DataType& t) {
    return t.getClass() == H5T_INTEGER && t.getSize() == 1 && isSigned(t);
}

}  // namespace

Vector CheckpointReader::read(const std::string& key, const Shape& expected) const {
    return readDataset<Vector>(impl_->file, impl_->fileSize, key, expected, path_,
                               "CheckpointReader::read()", isFloat32, "float32",
                               H5::PredType::NATIVE_FLOAT);
}

std::vector<std::uint8_t> CheckpointReader::readBytes(const std::string& key,
                                                      const Shape& expected) const {
    return readDataset<std::vector<std::uint8_t>>(impl_->file, impl_->fileSize, key, expected,
                                                  path_, "CheckpointReader::readBytes()", isUint8,
                                                  "uint8", H5::PredType::NATIVE_UINT8);
}

std::vector<std::int8_t> CheckpointReader::readSignedBytes(const std::string& key,
                                                           const Shape& expected) const {
    return readDataset<std::vector<std::int8_t>>(impl_->file, impl_->fileSize, key, expected,
                                                 path_, "CheckpointReader::readSignedBytes()",
                                                 isInt8, "int8", H5::PredType::NATIVE_INT8);
}

std::vector<std::int64_t> CheckpointReader::readInts(const std::string& key) const {
    const char* where = "CheckpointReader::readInts()";
    try {
        const H5::DataSet ds = openDataset(impl_->file, key, path_, where);
        const H5::DataType type = ds.getDataType();
        if (!fitsInt64(type))
            fail(where, "'" + key + "' in '" + path_ + "' is " + typeName(type) +
                            ", expected an integer type that fits int64");
        const auto stored = spaceShape(ds.getSpace());
        if (!stored) fail(where, "'" + key + "' in '" + path_ + "' has a null dataspace");
        if (stored->dims.size() > 1)
            fail(where, "'" + key + "' in '" + path_ + "' has shape " + stored->str() +
                            ", expected 1-D");
        checkClaim(ds, *stored, sizeof(std::int64_t), key, path_, impl_->fileSize, where);
        std::vector<std::int64_t> out(static_cast<std::size_t>(stored->size()));
        if (!out.empty()) ds.read(out.data(), H5::PredType::NATIVE_INT64);
        return out;
    } catch (const H5::Exception& e) {
        throw std::runtime_error(std::string(where) + ": cannot read '" + key + "' from '" +
                                 path_ + "': " + detail(e));
    }
}

bool CheckpointReader::hasAttr(const std::string& path, const std::string& name) const {
    const char* where = "CheckpointReader::hasAttr()";
    const std::vector<std::string> parts = splitKey(path, where, true);
    try {
        const auto type = objectType(impl_->file, parts);
        if (!type) return false;
        auto obj = openObject(impl_->file, joinKey(parts, parts.size()), *type);
        return obj && (*obj)->attrExists(name);
    } catch (const H5::Exception& e) {
        throw std::runtime_error(std::string(where) + ": '" + path + "' in '" + path_ +
                                 "': " + detail(e));
    }
}

double CheckpointReader::attrDouble(const std::string& path, const std::string& name) const {
    const char* where = "CheckpointReader::attrDouble()";
    try {
        const H5::Attribute a = openAttr(impl_->file, path, name, path_, where);
        const H5::DataType type = a.getDataType();
        if (type.getClass() == H5T_FLOAT) {
            double v = 0;
            a.read(H5::PredType::NATIVE_DOUBLE, &v);
            return v;
        }
        if (fitsInt64(type)) {  // as MemoryState: integers read as double too
            std::int64_t v = 0;
            a.read(H5::PredType::NATIVE_INT64, &v);
            return static_cast<double>(v);
        }
        fail(where, "attribute '" + name + "' on '" + path + "' in '" + path_ + "' is " +
                        typeName(type) + ", not a number");
    } catch (const H5::Exception& e) {
        throw std::runtime_error(std::string(where) + ": '" + name + "' on '" + path + "' in '" +
                                 path_ + "': " + detail(e));
    }
}

std::int64_t CheckpointReader::attrInt(const std::string& path, const std::string& name) const {
    const char* where = "CheckpointReader::attrInt()";
    try {
        const H5::Attribute a = openAttr(impl_->file, path, name, path_, where);
        const H5::DataType type = a.getDataType();
        if (!fitsInt64(type))
            fail(where, "attribute '" + name + "' on '" + path + "' in '" + path_ + "' is " +
                            typeName(type) + ", not an integer that fits int64");
        std::int64_t v = 0;
        a.read(H5::PredType::NATIVE_INT64, &v);
        return v;
    } catch (const H5::Exception& e) {
        throw std::runtime_error(std::string(where) + ": '" + name + "' on '" + path + "' in '" +
                                 path_ + "': " + detail(e));
    }
}

std::string CheckpointReader::attrString(const std::string& path, const std::string& name) const {
    const char* where = "CheckpointReader::attrString()";
    try {
        const H5::Attribute a = openAttr(impl_->file, path, name, path_, where);
        if (a.getTypeClass() != H5T_STRING)
            fail(where, "attribute '" + name + "' on '" + path + "' in '" + path_ + "' is " +
                            typeName(a.getDataType()) + ", not a string");
        std::string v;
        a.read(a.getStrType(), v);  // handles variable- and fixed-length strings
        return v;
    } catch (const H5::Exception& e) {
        throw std::runtime_error(std::string(where) + ": '" + name + "' on '" + path + "' in '" +
                                 path_ + "': " + detail(e));
    }
}

std::vector<std::string> CheckpointReader::keys(const std::string& group) const {
    const char* where = "CheckpointReader::keys()";
    const std::vector<std::string> parts = splitKey(group, where, true);
    try {
        const auto type = objectType(impl_->file, parts);
        if (!type)
            throw std::out_of_range(std::string(where) + ": no group '" + group + "' in '" +
                                    path_ + "'");
        if (*type != H5O_TYPE_GROUP)
            fail(where, "'" + group + "' in '" + path_ + "' is not a group");
        const H5::Group g = impl_->file.openGroup(joinKey(parts, parts.size()));
        std::vector<std::string> out;
        const hsize_t n = g.getNumObjs();
        for (hsize_t i = 0; i < n; ++i) out.push_back(g.getObjnameByIdx(i));
        std::sort(out.begin(), out.end());
        return out;
    } catch (const H5::Exception& e) {
        throw std::runtime_error(std::string(where) + ": '" + group + "' in '" + path_ +
                                 "': " + detail(e));
    }
}

}  // namespace tern::io
