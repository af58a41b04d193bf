// Plain HDF5 files: a reader of numeric datasets of any file and a small atomic writer
// (tern-lsq's input and output; include/tern/io/hdf5_file.hpp).
#include "tern/io/hdf5_file.hpp"

#include "hdf5_util.hpp"

#include "tern/core/error.hpp"

#include <filesystem>
#include <stdexcept>
#include <system_error>

namespace tern::io {

namespace fs = std::filesystem;
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
    const char* where = "Hdf5Reader::has()";
    const std::vector<std::string> parts = splitKey(name, where, false);
    try {
        const auto type = objectType(impl_->file, parts);
        return type && *type == H5O_TYPE_DATASET;
    } catch (const H5::Exception& e) {
        throw std::runtime_error(std::string(where) + ": '" + name + "' in '" + path_ +
                                 "': " + detail(e));
    }
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

struct Hdf5Writer::Impl {
    H5::H5File file;
    bool closed = false;
    explicit Impl(const std::string& tmp) : file(tmp, H5F_ACC_TRUNC) {}
};

Hdf5Writer::Hdf5Writer(const std::string& path) : path_(path) {
    if (path.empty()) fail("Hdf5Writer::Hdf5Writer()", "empty path");
    quietHdf5();
    try {
        impl_ = std::make_unique<Impl>(tmpPath());
    } catch (const H5::Exception& e) {
        throw std::runtime_error("Hdf5Writer: cannot write '" + tmpPath() + "' (" + detail(e) +
                                 ")");
    }
}

Hdf5Writer::~Hdf5Writer() {
    if (!impl_ || impl_->closed) return;
    try {
        impl_->file.close();
    } catch (...) {
    }
    std::error_code ec;
    fs::remove(tmpPath(), ec);
}

void Hdf5Writer::writeFloats(const std::string& name, CVecRef data, const Shape& shape) {
    const char* where = "Hdf5Writer::writeFloats()";
    if (impl_->closed) throw std::logic_error(std::string(where) + ": '" + path_ + "' is closed");
    const std::vector<std::string> parts = splitKey(name, where, false);
    if (data.size() != shape.size())
        fail(where, TERN_MSG("'" << name << "': data has " << data.size() << " elements, shape "
                                 << shape.str() << " has " << shape.size()));
    std::vector<hsize_t> dims;
    for (Index d : shape.dims) {
        if (d < 0) fail(where, "'" + name + "' has a negative dim in shape " + shape.str());
        dims.push_back(static_cast<hsize_t>(d));
    }
    try {
        const std::string full = prepareDataset(impl_->file, parts, name, tmpPath(), where);
        const H5::DataSpace space = dims.empty()
                                        ? H5::DataSpace(H5S_SCALAR)
                                        : H5::DataSpace(static_cast<int>(dims.size()), dims.data());
        H5::DataSet ds = impl_->file.createDataSet(full, H5::PredType::IEEE_F32LE, space);
        if (data.size() > 0) ds.write(data.data(), H5::PredType::NATIVE_FLOAT);
    } catch (const H5::Exception& e) {
        throw std::runtime_error("Hdf5Writer: cannot write '" + tmpPath() + "' (" + detail(e) +
                                 ")");
    }
}

void Hdf5Writer::writeDouble(const std::string& name, double value) {
    const char* where = "Hdf5Writer::writeDouble()";
    if (impl_->closed) throw std::logic_error(std::string(where) + ": '" + path_ + "' is closed");
    const std::vector<std::string> parts = splitKey(name, where, false);
    try {
        const std::string full = prepareDataset(impl_->file, parts, name, tmpPath(), where);
        impl_->file.createDataSet(full, H5::PredType::IEEE_F64LE, H5::DataSpace(H5S_SCALAR))
            .write(&value, H5::PredType::NATIVE_DOUBLE);
    } catch (const H5::Exception& e) {
        throw std::runtime_error("Hdf5Writer: cannot write '" + tmpPath() + "' (" + detail(e) +
                                 ")");
    }
}

void Hdf5Writer::attr(const std::string& name, const std::string& value) {
    const char* where = "Hdf5Writer::attr()";
    if (impl_->closed) throw std::logic_error(std::string(where) + ": '" + path_ + "' is closed");
    if (name.empty()) fail(where, "empty attribute name");
    if (value.find('\0') != std::string::npos)
        fail(where, "string attribute '" + name + "' contains a NUL byte");
    try {
        const H5::StrType type(H5::PredType::C_S1, H5T_VARIABLE);
        if (impl_->file.attrExists(name)) impl_->file.removeAttr(name);
        impl_->file.createAttribute(name, type, H5::DataSpace(H5S_SCALAR)).write(type, value);
    } catch (const H5::Exception& e) {
        throw std::runtime_error("Hdf5Writer: cannot write '" + tmpPath() + "' (" + detail(e) +
                                 ")");
    }
}

void Hdf5Writer::close() {
    const std::string where = "Hdf5Writer::close()";
    if (impl_->closed) return;
    impl_->closed = true;
    const std::string tmp = tmpPath();
    std::error_code ec;
    try {
        try {
            impl_->file.close();
        } catch (const H5::Exception& e) {
            throw std::runtime_error("Hdf5Writer: cannot write '" + tmp + "' (" + detail(e) + ")");
        }
        fsyncPath(tmp, false, where);
        fs::rename(tmp, path_, ec);
        if (ec)
            throw std::runtime_error("Hdf5Writer: cannot rename '" + tmp + "' to '" + path_ +
                                     "': " + ec.message());
    } catch (...) {
        fs::remove(tmp, ec);
        throw;
    }
}

}  // namespace tern::io
