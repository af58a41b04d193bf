# tern-ablate: a grid of tern-train runs (variants x seeds) as child processes, summarized into
# results.csv / results.md (docs/ablate.md). It starts the tern-train built beside it.
tern_app(tern-ablate ${CMAKE_CURRENT_LIST_DIR}/tern_ablate.cpp)
add_dependencies(tern-ablate tern-train)
