# Sources of src/io (owned by that area).
