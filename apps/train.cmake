# tern-train and friends.
