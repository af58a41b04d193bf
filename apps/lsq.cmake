# tern-lsq (ternary least squares).
