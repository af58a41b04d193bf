# The apps' shared layer (apps/common: main() wrapper, option helpers, JSON files).
if(TARGET tern_app)
  tern_test(test_app unit)
  target_link_libraries(test_app PRIVATE tern_app)
endif()
