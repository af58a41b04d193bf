// Plain HDF5 files: a reader of numeric datasets of any file and a small atomic writer
// (tern-lsq's input and output; include/tern/io/hdf5_file.hpp).
#include "tern/io/hdf5_file.hpp"

#include "hdf5_util.hpp"

#include "tern/core/error.hpp"

#include <stdexcept>

namespace tern::io {

using namespace h5;

// ======================================================================= Hdf5Reader

struct Hdf5Reader::Impl {
    H5::H5File file;
    explicit Impl(const std::string& path) : file(path, H5F_ACC_RDONLY) {}
};

Hdf5Reader::Hdf5Reader(const std::string& path) : path_(path) {
    quietHdf5();
    try {
        impl_ = std::make_unique<Impl>(path);
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
        std::vector<double> out(static_cast<std::size_t>(i.shape.size()));
        if (!out.empty())
            openDataset(impl_->file, name, path_, where).read(out.data(),
                                                              H5::PredType::NATIVE_DOUBLE);
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
    try {
        out_ = std::make_unique<OutputFile>(path);
    } catch (const H5::Exception& e) {
        throw std::runtime_error("Hdf5Writer: cannot write '" + tmpPath() + "' (" + detail(e) +
                                 ")");
    }
}

void Hdf5Writer::writeFloats(const std::string& name, CVecRef data, const Shape& shape) {
    const char* where = "Hdf5Writer::writeFloats()";
    out_->checkOpen(where);
    const std::vector<std::string> parts = splitKey(name, where, false);
    checkCount(data.size(), shape, name, where);
    const std::vector<hsize_t> dims = datasetDims(shape, name, where);
    try {
        createDataset(out_->file, parts, name, tmpPath(), where, dims, H5::PredType::IEEE_F32LE,
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
        createDataset(out_->file, parts, name, tmpPath(), where, {}, H5::PredType::IEEE_F64LE,
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
        const H5::StrType type(H5::PredType::C_S1, H5T_VARIABLE);
        if (out_->file.attrExists(name)) out_->file.removeAttr(name);
        out_->file.createAttribute(name, type, H5::DataSpace(H5S_SCALAR)).write(type, value);
    } catch (const H5::Exception& e) {
        throw std::runtime_error("Hdf5Writer: cannot write '" + tmpPath() + "' (" + detail(e) +
                                 ")");
    }
}

void Hdf5Writer::close() {
    out_->commit("Hdf5Writer::close()", "Hdf5Writer", false, [&](const std::string& why) {
        return "Hdf5Writer: cannot write '" + tmpPath() + "' (" + why + ")";
    });
}

}  // namespace tern::io
