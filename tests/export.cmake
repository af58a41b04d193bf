# Export: BN folding, the tern-model file, the ternary and power-of-two inference path
# (synthetic data). cli_fixture/write_runs writes the runs the command-line checks below read.
tern_test(test_export unit SEPARATE cli_fixture/write_runs)
set(export_cli_dir ${CMAKE_CURRENT_BINARY_DIR}/export-cli)
set_tests_properties(test_export/cli_fixture/write_runs PROPERTIES
                     ENVIRONMENT TERN_EXPORT_CLI_DIR=${export_cli_dir} FIXTURES_SETUP export_cli)

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
  # A float block in a quantized layer (an fp run): neither ternary nor power-of-two, named.
  tern_cli_test(cli_export_float_quantized 2
                "block 'fc1.weights' is not ternary: filter 0 holds .* and not power-of-two: filter 0 holds .*, which is not .* times a power of two"
                ${export} --checkpoint ${export_cli_dir}/fp/checkpoint.h5 --out ${export_cli_dir}/fp.h5)
  # A GTC run: exported with power-of-two codes, tern-eval prints tern-train's accuracy.
  add_test(NAME cli_export_eval_gtc
           COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/export_cli.sh ${export} ${eval} ${export_cli_dir})
  set_tests_properties(cli_export_float_quantized cli_export_eval_gtc PROPERTIES
                       FIXTURES_REQUIRED export_cli)
  set_tests_properties(cli_export_eval_gtc PROPERTIES LABELS unit TIMEOUT 120)
endif()

# Residual networks: trained ResNet-20s exported (option A and projection shortcuts, twn, ttq,
# admm), ResNet-18 and a ResNet without BN folded from live networks, resume and --init.
tern_test(test_export_resnet unit)
