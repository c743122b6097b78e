"""The live web dashboard of fer-edge (``fer-edge dashboard``; needs the ``dashboard`` extra).

:mod:`edge.dashboard.state` is plain Python (MQTT messages -> per-device view);
:mod:`edge.dashboard.server` adds aiohttp and is imported only when the dashboard runs.
"""
