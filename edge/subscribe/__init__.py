"""The subscriber side: everything ``fer-edge monitor`` and the web dashboard share.

* ``link``: broker settings (the sink's validated config model), the paho client, the
  subscriptions and what a refusal means (:class:`~edge.subscribe.link.BrokerLink`);
* ``messages``: one parser and sanitizer for every received payload (size limit, strict JSON,
  ``fer.event/1`` and ``fer.state/1`` decoding, printable bounded text);
* ``fleet``: one fold of received messages into per-device views: de-duplicated events folded
  into the faces tracked now (:class:`~edge.state.FaceState`, the fold the device publishes),
  status, stats, and liveness by the rule in ``edge/liveness.py``.

The topic layout both sides of the broker use is ``edge/topics.py``. The monitor and the
dashboard only render what the fleet holds.
"""
