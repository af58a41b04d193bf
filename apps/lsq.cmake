# tern-lsq (ternary least squares).
tern_app(tern-lsq tern_lsq.cpp)
# ${HDF5_LIBRARIES}: FindHDF5's hdf5::hdf5_cpp (CMake 3.25, COMPONENTS CXX) lacks libhdf5.so,
# whose symbols H5F_ACC_* need directly.
target_link_libraries(tern-lsq PRIVATE hdf5::hdf5_cpp ${HDF5_LIBRARIES})

# The example of docs/optim.md, built (not installed) so that it keeps compiling.
add_executable(tern-example-lsq-admm ${PROJECT_SOURCE_DIR}/examples/lsq_admm.cpp)
target_link_libraries(tern-example-lsq-admm PRIVATE tern::tern)
target_compile_options(tern-example-lsq-admm PRIVATE -Wall -Wextra)
