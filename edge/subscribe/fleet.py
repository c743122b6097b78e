"""What a subscriber knows about every device: one fold of received messages, no MQTT, no UI.

:class:`Fleet` consumes ``<prefix>/<device>/events|status|stats|state`` messages (a subscriber
picks the kinds it folds) and keeps one :class:`DeviceView` per device. ``fer-edge monitor`` and
the web dashboard both fold through it and only render the result.

Semantics (each rule holds for every subscriber):

* **Topics** outside the prefix or of another kind are not ours: ignored, not counted.
* **Bad payloads** (too large, malformed, see ``edge/subscribe/messages.py``) are counted in
  :attr:`Fleet.bad_payloads`, remembered in :attr:`Fleet.last_error` and logged (the first ten,
  then every hundredth); they change nothing, not even the device's liveness: only a message
  that was applied is evidence of life.
* **Devices** appear with their first applied message, up to ``max_devices``; messages for
  further devices are counted in :attr:`Fleet.ignored` (a hostile publisher inventing device ids
  cannot exhaust memory). A device id is shown as :func:`~edge.subscribe.messages.printable`
  text of at most 128 characters.
* **Events** are de-duplicated by ``event_id`` (QoS-1 redeliveries; the last ``seen_ids`` ids are
  remembered) and folded into the device's :class:`~edge.state.FaceState`, the fold the device
  itself publishes as ``fer.state/1``: ``start``/``change``/``update`` set a face, ``end``
  removes it.
* **Status**: the payload (printable, at most 16 characters). When it leaves ``online``
  (``offline`` from the Last Will, ``stopped``) the faces are cleared: nobody is watched any more,
  and a crashed device never sends its ``end`` events.
* **State** (retained ``fer.state/1``) only seeds the faces of a device no event has been applied
  for yet: events are not retained, so after a subscriber restarts the state tells who is in
  front of the camera; once events flow they are the truth and a (late) state is ignored.
* **Liveness**: every applied message feeds the device's :class:`~edge.liveness.Liveness` (the
  rule in ``edge/liveness.py``); :meth:`Fleet.shown` is the status to show, ``stale`` once an
  ``online`` is no longer refreshed. :meth:`Fleet.sweep` finds devices whose shown status changed
  without a message (a silent death) and clears their faces, as for ``offline``.

Time is the caller's clock, passed in as ``now`` (the monitor uses the monotonic clock, the
dashboard unix time, which it also shows); nothing here reads a clock.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from edge.events import Event, SeenEvents
from edge.liveness import DEFAULT_EXPIRY_S, ONLINE, Liveness
from edge.state import FaceState
from edge.subscribe.messages import (
    BadPayload,
    Message,
    check_size,
    decode_event,
    decode_object,
    decode_state,
    decode_status,
    printable,
)
from edge.topics import KINDS, Topics

log = logging.getLogger(__name__)

#: Event ids remembered for de-duplication.
SEEN_IDS = 100_000
#: Devices tracked at most.
MAX_DEVICES = 500


@dataclass
class DeviceView:
    """What a subscriber knows about one device.

    Attributes:
        device_id: The device (printable, at most 128 characters).
        status: The last status payload, or None.
        status_at: When it arrived.
        stats: The last stats snapshot (a strict JSON object), or None.
        stats_at: When it arrived.
        model: The name of the model the device runs (from its stats or events), or None.
        faces: The faces tracked now.
        events: New (not duplicate) events received from it.
        last_seen: When its last applied message arrived.
        live: Its liveness (``edge/liveness.py``).
        shown: The shown status when last looked at (see :meth:`Fleet.sweep`).
    """

    device_id: str
    status: str | None = None
    status_at: float | None = None
    stats: dict[str, Any] | None = None
    stats_at: float | None = None
    model: str | None = None
    faces: FaceState = field(init=False)
    events: int = 0
    last_seen: float = 0.0
    live: Liveness = field(default_factory=Liveness)
    shown: str | None = None

    def __post_init__(self) -> None:
        self.faces = FaceState(self.device_id)


@dataclass(frozen=True)
class Update:
    """What one applied message (or a sweep) changed.

    Attributes:
        device: The device whose view changed.
        kind: The message's kind, or ``sweep``.
        event: The new event (kind ``events``), else None.
        cleared: Whether the device's faces were cleared (it left ``online`` or went stale).
    """

    device: str
    kind: str
    event: Event | None = None
    cleared: bool = False


class Fleet:
    """Every device seen under one prefix (see the module docstring for the rules).

    Args:
        prefix: Topic prefix the devices use.
        kinds: The kinds folded; messages of other kinds are ignored.
        stale_after_s: How long evidence of life without an MQTT 5 expiry counts.
        max_devices: Devices tracked at most.
        seen_ids: Event ids remembered for de-duplication.
    """

    def __init__(
        self,
        prefix: str = "fer",
        *,
        kinds: tuple[str, ...] = KINDS,
        stale_after_s: float = DEFAULT_EXPIRY_S,
        max_devices: int = MAX_DEVICES,
        seen_ids: int = SEEN_IDS,
    ) -> None:
        self.topics = Topics(prefix)
        self.kinds = kinds
        self.stale_after_s = stale_after_s
        self.max_devices = max_devices
        self.devices: dict[str, DeviceView] = {}
        #: New events, redeliveries dropped, malformed payloads, messages over the device cap.
        self.events = 0
        self.duplicates = 0
        self.bad_payloads = 0
        self.ignored = 0
        #: ``topic: why`` of the last bad payload (printable), or None.
        self.last_error: str | None = None
        self._seen = SeenEvents(seen_ids)

    @property
    def prefix(self) -> str:
        """The topic prefix."""
        return self.topics.prefix

    def handle(self, msg: Message, now: float) -> Update | None:
        """Fold one received message in.

        Args:
            msg: The message.
            now: When it arrived (the caller's clock).

        Returns:
            What changed, or None (not ours, bad, duplicate, over the device cap, or a state
            for a device that already sends events).
        """
        parsed = self.topics.parse(msg.topic)
        if parsed is None or parsed[1] not in self.kinds:
            return None
        device, kind = printable(parsed[0], 128), parsed[1]
        view = self.devices.get(device)
        if view is None:
            if len(self.devices) >= self.max_devices:
                self.ignored += 1
                return None
            view = DeviceView(device_id=device)
        try:
            check_size(msg.payload)
            update = self._apply(view, kind, msg.payload, now)
        except BadPayload as e:
            self._bad(msg.topic, str(e))
            return None
        if update is None:
            return None
        self.devices.setdefault(device, view)  # only an applied message makes a device appear
        self._observe(view, kind, msg, now)
        return update

    def shown(self, device: str, now: float) -> str | None:
        """The status to show for ``device``: ``stale`` once its ``online`` ran out."""
        view = self.devices.get(device)
        return None if view is None else view.live.shown(now)

    def sweep(self, now: float) -> list[Update]:
        """Devices whose shown status changed since they were last looked at, without a message.

        A device that went stale has its faces cleared (a crashed device never sends ``end``).

        Returns:
            One update (kind ``sweep``) per such device, to redraw or push.
        """
        out = []
        for view in self.devices.values():
            shown = view.live.shown(now)
            if shown == view.shown:
                continue
            view.shown = shown
            cleared = shown != ONLINE and view.faces.clear()
            out.append(Update(view.device_id, "sweep", cleared=cleared))
        return out

    # ---------------------------------------------------------------- internals
    def _observe(self, view: DeviceView, kind: str, msg: Message, now: float) -> None:
        """An applied message is evidence of life (``edge/liveness.py``)."""
        view.last_seen = now
        view.live.observe(
            kind,
            now,
            stale_after_s=self.stale_after_s,
            status=view.status if kind == "status" else None,
            retained=msg.retained,
            expiry_s=msg.expiry_s,
        )
        view.shown = view.live.shown(now)

    def _apply(self, view: DeviceView, kind: str, payload: bytes, now: float) -> Update | None:
        """Dispatch by kind; None when nothing was applied.

        Raises:
            BadPayload: for a malformed payload.
        """
        if kind == "status":
            view.status, view.status_at = decode_status(payload), now
            # offline (Last Will) or stopped: nobody is watched any more.
            cleared = view.status != ONLINE and view.faces.clear()
            return Update(view.device_id, kind, cleared=cleared)
        if kind == "stats":
            view.stats, view.stats_at = decode_object(payload), now
            model = view.stats.get("model")
            if isinstance(model, dict) and isinstance(model.get("name"), str):
                view.model = printable(model["name"], 64)
            return Update(view.device_id, kind)
        if kind == "state":
            if view.events:  # events flow: they are the truth (see the module docstring)
                return None
            view.faces.replace(decode_state(payload, now))
            return Update(view.device_id, kind)
        return self._apply_event(view, decode_event(payload), now)

    def _apply_event(self, view: DeviceView, event: Event, now: float) -> Update | None:
        if self._seen.check_and_add(event.event_id):
            self.duplicates += 1
            return None
        self.events += 1
        view.events += 1
        view.model = printable(event.model.name, 64)
        view.faces.apply(event, now)
        return Update(view.device_id, "events", event=event)

    def _bad(self, topic: str, why: str) -> None:
        self.bad_payloads += 1
        self.last_error = f"{printable(topic, 60, mark='~')}: {printable(why, 100, mark='~')}"
        n = self.bad_payloads
        if n <= 10 or n % 100 == 0:  # say so without flooding the journal
            log.warning("bad payload #%d on %s", n, self.last_error)
