# tern-ablate: a grid of tern-train runs (variants x seeds) as child processes, summarized into
# results.csv / results.md (docs/ablate.md). It starts the tern-train built beside it.
# ablate/: the grid (grid), the runs and their scheduler (runner), the results (summary).
tern_app(tern-ablate ${CMAKE_CURRENT_LIST_DIR}/tern_ablate.cpp
         ${CMAKE_CURRENT_LIST_DIR}/ablate/grid.cpp ${CMAKE_CURRENT_LIST_DIR}/ablate/runner.cpp
         ${CMAKE_CURRENT_LIST_DIR}/ablate/summary.cpp ${CMAKE_CURRENT_LIST_DIR}/ablate/text.cpp)
add_dependencies(tern-ablate tern-train)
