"""Helpers shared by the test suite and the benchmarks (like ``numpy.testing``).

- :mod:`edge.testing.broker`: a real mosquitto broker on a free port (outages, passwords, TLS)
  and a recording subscriber;
- :mod:`edge.testing.facevideo`: real FER2013 faces placed on a camera-sized canvas, written as
  a video or images, with a realistic camera (noise, exposure drift, panning);
- :mod:`edge.testing.mqtt`: test events, a fast-retrying sink config and a polling wait;
- :mod:`edge.testing.cli`: ``python -m edge|train ...`` in a child process, output captured.

They live in the package rather than in ``tests/`` so that ``bench/`` scripts import them like
any other module instead of putting ``tests/`` on ``sys.path``. Nothing here runs on a device:
the modules are imported only by tests and benchmarks, and need the ``mosquitto`` binary or
FER2013 data that a device does not have.
"""
