# tern-ablate end to end (synthetic data, tiny model) and its command line; bench/plot_report.py
# on its output when gnuplot is installed.
if(TARGET tern-ablate)
  tern_test(test_ablate unit SEPARATE plot_report_draws_every_figure)  # skipped without gnuplot
  target_compile_definitions(test_ablate PRIVATE
    TERN_ABLATE_EXE="$<TARGET_FILE:tern-ablate>" TERN_TRAIN_EXE="$<TARGET_FILE:tern-train>"
    TERN_PLOT_REPORT="${PROJECT_SOURCE_DIR}/bench/plot_report.py")
  add_dependencies(test_ablate tern-ablate tern-train)

  set(ablate $<TARGET_FILE:tern-ablate>)
  tern_cli_test(cli_ablate_help 0 "--k-sweep" ${ablate} --help)
  tern_cli_test(cli_ablate_no_out 1 "--out is required" ${ablate})
  tern_cli_test(cli_ablate_bad_flag 1 "unrecognised option '--bogus'" ${ablate} --out x --bogus)
  tern_cli_test(cli_ablate_unknown_variant 1 "unknown variant 'fpp'. known: fp, fp-nobn, twn" ${ablate} --out x --variants fpp)
  tern_cli_test(cli_ablate_missing_grid 1 "--grid: cannot open '/nonexistent.grid'" ${ablate} --out x --grid /nonexistent.grid)
  tern_cli_test(cli_ablate_missing_train 1 "tern-train not found or not executable at '/nonexistent'" ${ablate} --out x --tern-train /nonexistent)
  tern_cli_test(cli_ablate_bad_k 1 "--k-sweep: '2' is not a fraction in .0, 1]" ${ablate} --out x --k-sweep 0.1,2)
  tern_cli_test(cli_ablate_bad_seeds 1 "--seeds: 'x' is not a seed" ${ablate} --out x --seeds 1,x)
  tern_cli_test(cli_ablate_huge_seed 1 "--seeds: .99999999999999999999999. is not a seed .at most 2.64 - 1." ${ablate} --out x --seeds 99999999999999999999999)
  tern_cli_test(cli_ablate_reserved_flag 1 "--train-args: --seed is set by tern-ablate .use --seeds." ${ablate} --out x --train-args "--seed 3")
  tern_cli_test(cli_ablate_unknown_method 1 "--train-args: findMethod... unknown method 'nope'. known: fp, bc, bwn" ${ablate} --out x --train-args "--method nope")
  file(WRITE ${CMAKE_CURRENT_BINARY_DIR}/alias.grid "a: --method binaryconnect\n")
  tern_cli_test(cli_ablate_method_alias 0 " --method bc --seed 1 " ${ablate} --out x --seeds 1 --dry-run --grid ${CMAKE_CURRENT_BINARY_DIR}/alias.grid)
  file(WRITE ${CMAKE_CURRENT_BINARY_DIR}/bad.grid "fp --method fp\n")
  tern_cli_test(cli_ablate_bad_grid 1 "bad.grid:1: expected 'name: tern-train flags'" ${ablate} --out x --grid ${CMAKE_CURRENT_BINARY_DIR}/bad.grid)
endif()
