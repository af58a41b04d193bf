# Tests of the io area.
include(io_datasets.cmake)
tern_test(test_checkpoint unit)
# Workaround: with COMPONENTS CXX only, FindHDF5's hdf5::hdf5_cpp (CMake 3.25) lacks libhdf5.so,
# whose symbols checkpoint.cpp needs directly (H5F_ACC_* expand to H5check()/H5open()), so the
# link fails with "DSO missing from command line". The fix belongs in the top-level
# CMakeLists.txt (link ${HDF5_LIBRARIES} into tern); drop this line then.
target_link_libraries(test_checkpoint PRIVATE ${HDF5_LIBRARIES})
