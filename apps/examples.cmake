# The examples beside docs/optim.md's (lsq.cmake), built (not installed) so that they keep compiling.
# examples/custom_resnet.cpp: a residual network built on nn::Graph, trained with TWN, exported
add_executable(tern-example-custom-resnet ${PROJECT_SOURCE_DIR}/examples/custom_resnet.cpp)
target_link_libraries(tern-example-custom-resnet PRIVATE tern::tern)
target_compile_options(tern-example-custom-resnet PRIVATE -Wall -Wextra)
