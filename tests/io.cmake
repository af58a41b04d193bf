# Tests of the io area.
include(io_datasets.cmake)
# h5dump (hdf5-tools) and h5py (python3-h5py) read a checkpoint in tests of their own, which
# ctest reports SKIPPED when h5dump is absent (or $TERN_TEST_H5DUMP names a missing file), or
# when /usr/bin/python3 (or $TERN_TEST_PYTHON) cannot import h5py.
tern_test(test_checkpoint unit SEPARATE tools/h5dump_reads_the_file tools/h5py_reads_the_file)
# It checks the integrity header's CRC with zlib itself, and reads files of older tern versions
# from tests/io_data.
target_link_libraries(test_checkpoint PRIVATE ZLIB::ZLIB)
target_compile_definitions(test_checkpoint PRIVATE TERN_SOURCE_DIR="${PROJECT_SOURCE_DIR}")
