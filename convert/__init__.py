"""Keras -> int8 TFLite conversion with a parity gate and self-describing metadata."""
