# tern-lsq (ternary least squares).
# Its HDF5 input and output go through tern::io (io/hdf5_file.hpp): no HDF5 link of its own.
tern_app(tern-lsq tern_lsq.cpp)

# The example of docs/optim.md, built (not installed) so that it keeps compiling.
add_executable(tern-example-lsq-admm ${PROJECT_SOURCE_DIR}/examples/lsq_admm.cpp)
target_link_libraries(tern-example-lsq-admm PRIVATE tern::tern)
target_compile_options(tern-example-lsq-admm PRIVATE -Wall -Wextra)
