"""The frozen language model and how it is run: loading (models.py: the offline default, hub models, GGUF
dequantisation), which fast paths are exact on a model (fast_path.py), scoring, loss, evaluation and generation
(engine.py), and K prompts in one pass (multi_prompt.py).

May import: errors, paths, choices. Nothing above it (not methods, config or data): a method reaches the engine
through its own calls (prompt_for, scoring_args).
"""
