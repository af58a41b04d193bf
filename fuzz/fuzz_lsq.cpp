// libFuzzer target: tern-lsq's input reader (io::Hdf5Reader), read as tern-lsq reads it
// (apps/tern_lsq.cpp readProblem: has, info, readDoubles of A and b), plus a few other names.
#include "fuzz_util.hpp"
#include "tern/io/hdf5_file.hpp"

using namespace tern;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string path = fuzz::writeFile("input.h5", data, size);
    fuzz::clean([&] {
        const io::Hdf5Reader r(path);
        for (const char* name : {"A", "b", "x", "group/A", "note"}) {
            bool present = false;
            fuzz::clean([&] { present = r.has(name); });
            if (!present) continue;
            fuzz::clean([&] { (void)r.info(name); });
            fuzz::clean([&] { (void)r.readDoubles(name); });
        }
    });
    return 0;
}
