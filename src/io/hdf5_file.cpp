// Plain HDF5 files: a reader of numeric datasets of any file and a small atomic writer
// (tern-lsq's input and output; include/tern/io/hdf5_file.hpp).
#include "tern/io/hdf5_file.hpp"

#include "hdf5_util.hpp"

#include "tern/core/error.hpp"
#include "tern/io/integrity.hpp"

#include <filesystem>
#include <stdexcept>

namespace tern::io {

using namespace h5;

// ======================================================================= Hdf5Reader

struct Hdf5Reader::Impl {
    H5::H5File file;
    std::uint64_t fileSize = 0;
    explicit Impl(const std::string& path, std::uint64_t size)
        : file(path, H5F_ACC_RDONLY), fileSize(size) {}
};

Hdf5Reader::Hdf5Reader(const std::string& path) : path_(path) {
    quietHdf5();
    // A file tern wrote carries an integrity header: check it before libhdf5 reads a byte.
    // Files without one (h5py, other programs) are read as they are, without a warning.
    const IntegrityCheck integrity = checkIntegrity(path, "Hdf5Reader");
    if (!integrity.hasHeader) probeUnverified(path, "Hdf5Reader");
    try {
        impl_ = std::make_unique<Impl>(path, integrity.size);
    } catch (const H5::Exception& e) {
        throw std::runtime_error("Hdf5Reader: cannot open '" + path + "' as HDF5 (" + detail(e) +
                                 ")");
    }
}

Hdf5Reader::~Hdf5Reader() {
    try {
        impl_->file.close();
    } catch (...) {
    }
}

bool Hdf5Reader::has(const std::string& name) const {
    return hasObject(impl_->file, name, H5O_TYPE_DATASET, false, path_, "Hdf5Reader::has()");
}

DatasetInfo Hdf5Reader::info(const std::string& name) const {
    const char* where = "Hdf5Reader::info()";
    try {
        const H5::DataSet ds = openDataset(impl_->file, name, path_, where);
        const H5::DataType type = ds.getDataType();
        DatasetInfo out;
        switch (type.getClass()) {
            case H5T_INTEGER: out.valueClass = DatasetInfo::Class::Integer; break;
            case H5T_FLOAT: out.valueClass = DatasetInfo::Class::Float; break;
            case H5T_STRING: out.valueClass = DatasetInfo::Class::String; break;
            default: out.valueClass = DatasetInfo::Class::Other; break;
        }
        out.typeName = typeName(type);
        const auto shape = spaceShape(ds.getSpace());
        out.shape = shape ? *shape : Shape{std::vector<Index>{0}};  // null space: no elements
        checkClaim(ds, out.shape, 0, name, path_, impl_->fileSize, where);
        return out;
    } catch (const H5::Exception& e) {
        throw std::runtime_error(std::string(where) + ": '" + name + "' in '" + path_ +
                                 "': " + detail(e));
    }
}

std::vector<double> Hdf5Reader::readDoubles(const std::string& name) const {
    const char* where = "Hdf5Reader::readDoubles()";
    const DatasetInfo i = info(name);
    if (i.valueClass != DatasetInfo::Class::Integer && i.valueClass != DatasetInfo::Class::Float)
        fail(where, "'" + name + "' in '" + path_ + "' is " + i.typeName + ", not numeric");
    try {
        const H5::DataSet ds = openDataset(impl_->file, name, path_, where);
        checkClaim(ds, i.shape, sizeof(double), name, path_, impl_->fileSize, where);
        std::vector<double> out(static_cast<std::size_t>(i.shape.size()));
        if (!out.empty()) ds.read(out.data(), H5::PredType::NATIVE_DOUBLE);
        return out;
    } catch (const H5::Exception& e) {
        throw std::runtime_error(std::string(where) + ": cannot read '" + name + "' from '" +
                                 path_ + "': " + detail(e));
    }
}

// ======================================================================= Hdf5Writer

Hdf5Writer::Hdf5Writer(const std::string& path) : AtomicWriter(path) {
    if (path.empty()) fail("Hdf5Writer::Hdf5Writer()", "empty path");
    quietHdf5();
    out_ = std::make_unique<OutputFile>(path, [&](const std::string& why) {
        return "Hdf5Writer: cannot write '" + tmpPath() + "' (" + why + ")";
    });
}

void Hdf5Writer::writeFloats(const std::string& name, CVecRef data, const Shape& shape) {
    const char* where = "Hdf5Writer::writeFloats()";
    out_->checkOpen(where);
    const std::vector<std::string> parts = splitKey(name, where, false);
    checkCount(data.size(), shape, name, where);
    const std::vector<hsize_t> dims = datasetDims(shape, name, where);
    try {
        createDataset(out_->file(), parts, name, tmpPath(), where, dims, H5::PredType::IEEE_F32LE,
                      H5::PredType::NATIVE_FLOAT, data.data(), data.size());
    } catch (const H5::Exception& e) {
        throw std::runtime_error("Hdf5Writer: cannot write '" + tmpPath() + "' (" + detail(e) +
                                 ")");
    }
}

void Hdf5Writer::writeDouble(const std::string& name, double value) {
    const char* where = "Hdf5Writer::writeDouble()";
    out_->checkOpen(where);
    const std::vector<std::string> parts = splitKey(name, where, false);
    try {
        createDataset(out_->file(), parts, name, tmpPath(), where, {}, H5::PredType::IEEE_F64LE,
                      H5::PredType::NATIVE_DOUBLE, &value, 1);
    } catch (const H5::Exception& e) {
        throw std::runtime_error("Hdf5Writer: cannot write '" + tmpPath() + "' (" + detail(e) +
                                 ")");
    }
}

void Hdf5Writer::attr(const std::string& name, const std::string& value) {
    const char* where = "Hdf5Writer::attr()";
    out_->checkOpen(where);
    if (name.empty()) fail(where, "empty attribute name");
    if (value.find('\0') != std::string::npos)
        fail(where, "string attribute '" + name + "' contains a NUL byte");
    try {
        H5::H5File& file = out_->file();
        const H5::StrType type = fixedString(value);
        if (file.attrExists(name)) file.removeAttr(name);
        file.createAttribute(name, type, H5::DataSpace(H5S_SCALAR)).write(type, value);
    } catch (const H5::Exception& e) {
        throw std::runtime_error("Hdf5Writer: cannot write '" + tmpPath() + "' (" + detail(e) +
                                 ")");
    }
}

void Hdf5Writer::close() {
    const bool committed = out_->commit("Hdf5Writer", [&](const std::string& why) {
        return "Hdf5Writer: cannot write '" + tmpPath() + "' (" + why + ")";
    });
    if (!committed) return;
    // The rename is durable once the directory entry is on disk.
    std::filesystem::path dir = std::filesystem::path(path_).parent_path();
    if (dir.empty()) dir = ".";
    try {
        fsyncPath(dir, true, "Hdf5Writer");
    } catch (const std::runtime_error& e) {
        throw std::runtime_error(std::string(e.what()) + " ('" + path_ +
                                 "' is written but may not survive a power loss)");
    }
}

}  // namespace tern::io
