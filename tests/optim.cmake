# Tests of the optim area.
tern_test(test_optim unit)       # inner updates, schedules, settings, loop, ADMM state, STE, resume
tern_test(test_optim_admm unit)  # planted ternary least squares vs brute force
