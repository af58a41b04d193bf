# Fault injection (tests/fault_inject.sh, docs/reliability.md): kill -9 and --resume, a full
# disk, a read-only --out, bit flips in checkpoints and model files, through the apps. Label
# "fault" (about 1-3 minutes on 2 cores; `ctest -LE fault` leaves it out). SKIPPED without
# the MNIST data (data/fetch.sh), or when not root (the full-disk case needs mount) and the
# rest passed. It mounts small tmpfs folders when root, so it runs alone (RUN_SERIAL).
if(TERN_BUILD_APPS)
  add_test(NAME fault_inject
           COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/fault_inject.sh ${PROJECT_BINARY_DIR})
  set_tests_properties(fault_inject PROPERTIES LABELS fault TIMEOUT 900 SKIP_RETURN_CODE 77
                       RUN_SERIAL TRUE)
endif()
