# tern-bench-infer: deployed ternary LeNet-5 (TernaryModel) vs the float network, batch 1 and
# 100; bench/torch_infer.py is the PyTorch counterpart (docs/export.md).
add_executable(tern-bench-infer ${CMAKE_CURRENT_LIST_DIR}/bench_infer.cpp)
target_link_libraries(tern-bench-infer PRIVATE tern::tern Boost::program_options OpenMP::OpenMP_CXX)
target_compile_options(tern-bench-infer PRIVATE -Wall -Wextra -Wpedantic
                       $<$<BOOL:${TERN_WERROR}>:-Werror>)
