# Export: BN folding, the tern-model file, the ternary inference path (synthetic data).
tern_test(test_export unit)

# tern-export / tern-eval command lines: exit codes and one-line messages.
if(TERN_BUILD_APPS)
  set(export $<TARGET_FILE:tern-export>)
  set(eval $<TARGET_FILE:tern-eval>)
  tern_cli_test(cli_export_help 0 "--checkpoint" ${export} --help)
  tern_cli_test(cli_export_no_out 1 "--out is required" ${export} --checkpoint x.h5)
  tern_cli_test(cli_export_missing 2 "/nonexistent.h5': no such file" ${export} --checkpoint /nonexistent.h5 --out /tmp/m.h5)
  tern_cli_test(cli_export_bad_input 1 "--input: '1,28' is not C,H,W" ${export} --checkpoint x.h5 --out y.h5 --input 1,28)
  tern_cli_test(cli_eval_help 0 "--model" ${eval} --help)
  tern_cli_test(cli_eval_neither 1 "give exactly one of --model and --checkpoint" ${eval})
  tern_cli_test(cli_eval_missing 2 "/nonexistent.h5': no such file" ${eval} --model /nonexistent.h5)
endif()
