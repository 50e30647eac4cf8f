"""The scoring worker: loads the named model version, preprocesses each pair, runs BR-GAN.

Workers are stateless compute (DESIGN.md "Who owns state"): they read the spool, write result
files under ``results_dir`` and return a small JSON summary; they never open the index.
"""
