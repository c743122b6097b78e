"""fer-edge workstation training: seed-paper architectures, FER2013/FERPlus data, evaluation.

Imports TensorFlow lazily; ``edge`` never imports this package.
"""
