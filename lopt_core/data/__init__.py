"""Tasks and their data: the built-in tasks and user files (tasks.py), label words (label_words.py), a file's
preview and facts (preview.py), and kept uploads (uploads.py).

May import: errors, paths, choices, lm, methods, config, hosting.
"""
