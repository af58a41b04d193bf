# Tests of the io area.
include(io_datasets.cmake)
# h5dump (hdf5-tools) reads a checkpoint in a test of its own, which ctest reports SKIPPED when
# h5dump is absent (or $TERN_TEST_H5DUMP names a missing file).
tern_test(test_checkpoint unit SEPARATE tools/h5dump_reads_the_file)
