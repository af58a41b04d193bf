# lsq_recovery: sparse ternary signal recovery, ADMM / PGD / rounding vs brute force
# (docs/lsq-recovery.md).
add_executable(lsq_recovery lsq_recovery.cpp)
target_link_libraries(lsq_recovery PRIVATE tern::tern Boost::program_options)
target_compile_options(lsq_recovery PRIVATE -Wall -Wextra -Wpedantic
                       $<$<BOOL:${TERN_WERROR}>:-Werror>)
