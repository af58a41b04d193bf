# Tests of the io area.
include(io_datasets.cmake)
tern_test(test_checkpoint unit)
