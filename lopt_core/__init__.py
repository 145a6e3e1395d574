"""LoPT Lab: low-rank soft-prompt tuning on a frozen language model.

Packages, lowest first (each imports only those before it; tests/test_imports.py checks):
  errors, paths, choices   the error tree, where files live, the fixed choice lists
  lm/                      the frozen model: loading, fast paths, engine, K prompts per pass
  methods/                 the trainable methods, their registry and LoPA's encoders
  config                   RunConfig
  hosting/                 a public host's limits, visitors, downloads, safe messages
  data/                    tasks, label words, file previews, uploads
  store/                   runs, sweeps, analyses and metrics in sqlite
  training/                the one check, the one loop, artifacts, run operations
  analysis/ plots/         views over finished runs, and their figures
  sweeps/                  grids, presets, estimates, readings, results files, Ray
  jobs/                    the app's background job manager and analyses
  ui/ cli share bench/     the front ends
"""
