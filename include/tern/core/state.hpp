#pragma once
/// \file Abstract state sink/source, so optimizers and networks can save and load their state
/// without depending on HDF5. io::CheckpointWriter/Reader implement these on HDF5 files;
/// MemoryState implements both in memory (tests, snapshots).
///
/// Keys are '/'-separated paths ("optim/U/conv1.weights"). Attributes hang on a path
/// ("optim", "rho"); the path "" is the root.
#include "tern/core/types.hpp"

#include <cstdint>
#include <map>
#include <string>
#include <variant>

namespace tern {

class StateWriter {
public:
    virtual ~StateWriter() = default;
    /// Writes a float32 tensor at `key` with the given shape (shape.size() == data.size()).
    virtual void write(const std::string& key, CVecRef data, const Shape& shape) = 0;
    /// Writes an int64 array (permutations, counters).
    virtual void writeInts(const std::string& key, const std::vector<std::int64_t>& data) = 0;
    virtual void attr(const std::string& path, const std::string& name, double value) = 0;
    virtual void attr(const std::string& path, const std::string& name, std::int64_t value) = 0;
    virtual void attr(const std::string& path, const std::string& name, const std::string& value) = 0;
    // Disambiguate literals.
    void attr(const std::string& path, const std::string& name, int value) {
        attr(path, name, static_cast<std::int64_t>(value));
    }
    void attr(const std::string& path, const std::string& name, const char* value) {
        attr(path, name, std::string(value));
    }
};

class StateReader {
public:
    virtual ~StateReader() = default;
    virtual bool has(const std::string& key) const = 0;
    /// Reads a float tensor. Throws std::out_of_range if missing, std::invalid_argument
    /// naming the key and both shapes if the stored shape differs from `expected`.
    virtual Vector read(const std::string& key, const Shape& expected) const = 0;
    virtual std::vector<std::int64_t> readInts(const std::string& key) const = 0;
    virtual bool hasAttr(const std::string& path, const std::string& name) const = 0;
    virtual double attrDouble(const std::string& path, const std::string& name) const = 0;
    virtual std::int64_t attrInt(const std::string& path, const std::string& name) const = 0;
    virtual std::string attrString(const std::string& path, const std::string& name) const = 0;
};

/// In-memory StateWriter + StateReader.
class MemoryState final : public StateWriter, public StateReader {
public:
    using StateWriter::attr;
    void write(const std::string& key, CVecRef data, const Shape& shape) override;
    void writeInts(const std::string& key, const std::vector<std::int64_t>& data) override;
    void attr(const std::string& path, const std::string& name, double value) override;
    void attr(const std::string& path, const std::string& name, std::int64_t value) override;
    void attr(const std::string& path, const std::string& name, const std::string& value) override;

    bool has(const std::string& key) const override;
    Vector read(const std::string& key, const Shape& expected) const override;
    std::vector<std::int64_t> readInts(const std::string& key) const override;
    bool hasAttr(const std::string& path, const std::string& name) const override;
    double attrDouble(const std::string& path, const std::string& name) const override;
    std::int64_t attrInt(const std::string& path, const std::string& name) const override;
    std::string attrString(const std::string& path, const std::string& name) const override;

private:
    using AttrValue = std::variant<double, std::int64_t, std::string>;
    const AttrValue& findAttr(const std::string& path, const std::string& name) const;
    std::map<std::string, std::pair<Vector, Shape>> tensors_;
    std::map<std::string, std::vector<std::int64_t>> ints_;
    std::map<std::pair<std::string, std::string>, AttrValue> attrs_;
};

}  // namespace tern
