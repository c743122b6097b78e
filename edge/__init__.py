"""fer-edge device runtime: camera -> faces -> int8 TFLite classifier -> MQTT events.

Never imports TensorFlow: a Raspberry Pi installs only ``fer-edge[edge]``.
"""

__version__ = "0.1.0"
