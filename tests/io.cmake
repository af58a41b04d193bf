# Tests of the io area.
include(io_datasets.cmake)
