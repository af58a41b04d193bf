# Image folders (--dataset folder): the tests write their own JPEG/PNG trees through TurboJPEG
# and libpng. Built without them (TERN_HAVE_IMAGE_FOLDER off), the one case left is SKIPPED
# with the reason in its output (ctest -V).
tern_test(test_image_folder unit)
if(TERN_HAVE_IMAGE_FOLDER)
  target_link_libraries(test_image_folder PRIVATE PkgConfig::TURBOJPEG PkgConfig::LIBPNG)
  target_compile_definitions(test_image_folder PRIVATE TERN_HAVE_IMAGE_FOLDER)
  if(TARGET tern-eval)
    target_compile_definitions(test_image_folder PRIVATE TERN_EVAL_EXE="$<TARGET_FILE:tern-eval>")
    add_dependencies(test_image_folder tern-eval)
  endif()
else()
  set_tests_properties(test_image_folder PROPERTIES
                       SKIP_REGULAR_EXPRESSION "is skipped because precondition failed")
  # Boost prints the skip at log level test_suite
  set_property(TEST test_image_folder APPEND PROPERTY ENVIRONMENT BOOST_TEST_LOG_LEVEL=test_suite)
endif()
