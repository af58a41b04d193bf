# Sources of src/run (the training run: configuration, callbacks on optimize(), summary).
# summary.json is written through nlohmann::json (Debian nlohmann-json3-dev).
find_package(nlohmann_json 3 REQUIRED)
target_sources(tern PRIVATE
  ${CMAKE_CURRENT_LIST_DIR}/config.cpp
  ${CMAKE_CURRENT_LIST_DIR}/stats.cpp
  ${CMAKE_CURRENT_LIST_DIR}/callbacks.cpp
  ${CMAKE_CURRENT_LIST_DIR}/recipe.cpp
  ${CMAKE_CURRENT_LIST_DIR}/text_file.cpp
  ${CMAKE_CURRENT_LIST_DIR}/train.cpp)
# header-only, used in src/run only: not a dependency of the installed package
target_link_libraries(tern PRIVATE $<BUILD_INTERFACE:nlohmann_json::nlohmann_json>)
