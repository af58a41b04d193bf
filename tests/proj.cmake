# Tests of the proj area.
