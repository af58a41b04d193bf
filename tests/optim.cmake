# Tests of the optim area.
# inner updates, schedules, settings, loop, ADMM state, STE, resume
tern_test(test_optim unit testing/source_rules.cpp)
# every_rule_is_covered reads src/optim and include/tern/optim for the checks the table must cover
target_compile_definitions(test_optim PRIVATE TERN_SOURCE_DIR="${PROJECT_SOURCE_DIR}")
tern_test(test_optim_admm unit)  # planted ternary least squares vs brute force
tern_test(test_optim_partial unit)  # RPR and incremental quantization
tern_test(test_optim_gtc unit)  # GTC through Ste: theta, the bit penalty, resume
# tern-lsq end to end (needs the app)
if(TARGET tern-lsq)
  tern_test(test_optim_lsq_app unit)
  target_link_libraries(test_optim_lsq_app PRIVATE hdf5::hdf5_cpp ${HDF5_LIBRARIES})
  target_compile_definitions(test_optim_lsq_app PRIVATE TERN_LSQ_EXE="$<TARGET_FILE:tern-lsq>")
  add_dependencies(test_optim_lsq_app tern-lsq)
endif()
# docs/optim.md's example runs and recovers its signal (exit 0)
if(TARGET tern-example-lsq-admm)
  add_test(NAME example_lsq_admm COMMAND tern-example-lsq-admm)
  set_tests_properties(example_lsq_admm PROPERTIES LABELS unit TIMEOUT 60)
endif()
tern_test(test_distill unit)  # soft cross-entropy, Ste's joint teacher by hand
tern_test(test_block_sets unit)  # per-block sets: the spec parser, two sets in one problem, resume
