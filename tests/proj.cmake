# Tests of the proj area.
tern_test(test_projection unit)
tern_test(test_quantizer unit)
tern_test(test_proj_gtc unit)
